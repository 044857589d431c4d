/**
 * Bearer-token authentication. The tokens file holds only SHA-256 digests of tokens, each
 * naming a tenant and a role; a presented token is hashed and compared in constant time. The
 * file is watched (`watchFile`): tokens are added and revoked by editing it (or updating the
 * Secret it is mounted from), with no restart. A token with `expiresAt` is refused from then on.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync, stat, type Stats, statSync } from 'node:fs';
import { ApiError, ErrorCode, parseWith, type Principal, TokensFileSchema } from '@batchapi/api';
import { Metric } from '@batchapi/telemetry';
import { INPUTS_TOKEN_PREFIX } from '@batchapi/workflows';
import { Gauge, type Registry } from 'prom-client';

/** Injection token of the authenticator. */
export const AUTH = Symbol('TokenAuthenticator');

/** Injection token of the tokens' expiry gauge. */
export const TOKEN_EXPIRY_GAUGE = Symbol('TokenExpiryGauge');

/**
 * `batch_admission_token_expiry_timestamp_seconds{tenant, role, name}`: when each token of the
 * file that has an `expiresAt` expires (expired ones too, until the file drops them), read from
 * the file as last loaded at each scrape. The `BatchApiTokenExpiringSoon` alert reads it.
 */
export function tokenExpiryGauge(auth: Pick<TokenAuthenticator, 'expiries'>, registry: Registry): Gauge {
  return new Gauge({
    name: Metric.admissionTokenExpiry,
    help: 'When each API token with an expiresAt expires, in seconds since the epoch, by tenant, role and name (the tokens file as last loaded)',
    labelNames: ['tenant', 'role', 'name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of auth.expiries()) this.set({ tenant: t.tenant, role: t.role, name: t.name }, t.expiresAt / 1000);
    },
  });
}

/** A token of the file, as admission keeps it. */
interface Entry {
  digest: Buffer;
  principal: Principal;
  /** Epoch ms from which it is refused; Infinity: never. */
  expiresAt: number;
  /** Its `name`, else the digest's first 12 hex digits. */
  name: string;
}

/** What the expiry gauge reads of a token that expires. */
export interface TokenExpiry {
  tenant: string;
  role: Principal['role'];
  name: string;
  /** Epoch ms. */
  expiresAt: number;
}

export class TokenAuthenticator {
  private entries: Entry[] = [];

  /**
   * @param file - the tokens (`TokensFileSchema`, parsed)
   * @param now - the clock expiries are judged by, epoch ms. @default Date.now
   */
  constructor(
    file: TokensFile,
    private readonly now: () => number = Date.now,
  ) {
    this.replace(file);
  }

  /** Loads a tokens file (`BATCH_TOKENS_FILE`); a malformed file stops the service at start. */
  static fromFile(path: string, now?: () => number): TokenAuthenticator {
    return new TokenAuthenticator(readTokensFile(path), now);
  }

  /**
   * Loads a tokens file and reloads it whenever it changes (its stat — inode, size, mtime — is
   * polled every `intervalMs`, which also sees a Kubernetes Secret's symlink swap): a valid new
   * file replaces every token at once (a removed token is refused from then on); a malformed or
   * unreadable one is reported to `onReload` and the tokens in use stay. `close()` stops watching.
   * @param opts.intervalMs - how often the file's stat is read, in milliseconds. @default 2000
   * @param opts.onReload - told of each reload: `reloaded` (with the token count) or `refused` (with why)
   * @param opts.now - the clock expiries are judged by, epoch ms. @default Date.now
   */
  static watchFile(
    path: string,
    opts: { intervalMs?: number; onReload?: (outcome: { reloaded: number } | { refused: string }) => void; now?: () => number } = {},
  ): TokenAuthenticator & { close(): void } {
    // The file's stat before it is read is what later stats are compared with. (`fs.watchFile`
    // took its first stat on the thread pool after it started, so a change made in between
    // became its baseline and was never reloaded: the tokens test saw a rotation missed.)
    let seen: Stats | undefined = statSync(path);
    const auth = TokenAuthenticator.fromFile(path, opts.now);
    let polling = false;
    const timer = setInterval(() => {
      if (polling) return;
      polling = true;
      stat(path, (err, cur) => {
        polling = false;
        if (err ? seen === undefined : seen && cur.ino === seen.ino && cur.size === seen.size && cur.mtimeMs === seen.mtimeMs) return;
        seen = err ? undefined : cur;
        try {
          const file = readTokensFile(path);
          auth.replace(file);
          opts.onReload?.({ reloaded: file.tokens.length });
        } catch (e) {
          opts.onReload?.({ refused: (e as Error).message });
        }
      });
    }, opts.intervalMs ?? 2000);
    // never keeps the process alive
    timer.unref();
    return Object.assign(auth, { close: () => clearInterval(timer) });
  }

  /** Replaces every token with `file`'s. */
  private replace(file: TokensFile): void {
    this.entries = file.tokens.map((t) => ({
      digest: Buffer.from(t.sha256, 'hex'),
      principal: { tenant: t.tenant, role: t.role },
      expiresAt: t.expiresAt === undefined ? Infinity : Date.parse(t.expiresAt),
      name: t.name ?? t.sha256.slice(0, 12),
    }));
  }

  /** The tokens that expire (expired ones too), for the expiry gauge. */
  expiries(): TokenExpiry[] {
    return this.entries.filter((e) => e.expiresAt !== Infinity).map((e) => ({ ...e.principal, name: e.name, expiresAt: e.expiresAt }));
  }

  /** Resolves an `Authorization` header to a principal or throws `unauthenticated`. */
  authenticate(header: string | undefined): Principal {
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header ?? '');
    if (!m) throw new ApiError(ErrorCode.Unauthenticated, 'send "Authorization: Bearer <token>"', { field: 'Authorization' });
    // A step's inputs token reads its workflow's jobs and results (`Readers`), and nothing else.
    if (m[1].startsWith(INPUTS_TOKEN_PREFIX)) {
      throw new ApiError(ErrorCode.PermissionDenied, "a step's inputs token only reads its workflow, its steps' jobs and their results; use a user's token", {
        field: 'Authorization',
      });
    }
    const digest = createHash('sha256').update(m[1]).digest();
    let found: Entry | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, digest)) found = e;
    if (!found) throw new ApiError(ErrorCode.Unauthenticated, 'the bearer token is not valid', { field: 'Authorization' });
    if (this.now() >= found.expiresAt) {
      throw new ApiError(
        ErrorCode.Unauthenticated,
        `the bearer token expired at ${new Date(found.expiresAt).toISOString()}; ask an operator of this cluster for a new one`,
        { field: 'Authorization' },
      );
    }
    return found.principal;
  }

  /** As `authenticate`, and the token must be an operator's (else `permission_denied`, naming what needs one). */
  authenticateOperator(header: string | undefined, what: string): Principal {
    const p = this.authenticate(header);
    if (p.role !== 'operator') throw new ApiError(ErrorCode.PermissionDenied, `${what} are managed by operators; use an operator token`);
    return p;
  }
}

type TokensFile = { tokens: Array<{ sha256: string; tenant: string; role: 'tenant' | 'operator'; expiresAt?: string; name?: string }> };

function readTokensFile(path: string): TokensFile {
  return parseWith(TokensFileSchema, JSON.parse(readFileSync(path, 'utf8')), path);
}
