/**
 * Bearer-token authentication. The tokens file holds only SHA-256 digests of tokens, each
 * naming a tenant and a role; a presented token is hashed and compared in constant time. The
 * file is watched (`watchFile`): tokens are added and revoked by editing it (or updating the
 * Secret it is mounted from), with no restart.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync, stat, type Stats, statSync } from 'node:fs';
import { ApiError, ErrorCode, parseWith, type Principal, TokensFileSchema } from '@batchapi/api';
import { INPUTS_TOKEN_PREFIX } from '@batchapi/workflows';

/** Injection token of the authenticator. */
export const AUTH = Symbol('TokenAuthenticator');

export class TokenAuthenticator {
  private entries: Array<{ digest: Buffer; principal: Principal }> = [];

  constructor(file: TokensFile) {
    this.replace(file);
  }

  /** Loads a tokens file (`BATCH_TOKENS_FILE`); a malformed file stops the service at start. */
  static fromFile(path: string): TokenAuthenticator {
    return new TokenAuthenticator(readTokensFile(path));
  }

  /**
   * Loads a tokens file and reloads it whenever it changes (its stat — inode, size, mtime — is
   * polled every `intervalMs`, which also sees a Kubernetes Secret's symlink swap): a valid new
   * file replaces every token at once (a removed token is refused from then on); a malformed or
   * unreadable one is reported to `onReload` and the tokens in use stay. `close()` stops watching.
   * @param opts.intervalMs - how often the file's stat is read, in milliseconds. @default 2000
   * @param opts.onReload - told of each reload: `reloaded` (with the token count) or `refused` (with why)
   */
  static watchFile(
    path: string,
    opts: { intervalMs?: number; onReload?: (outcome: { reloaded: number } | { refused: string }) => void } = {},
  ): TokenAuthenticator & { close(): void } {
    // The file's stat before it is read is what later stats are compared with. (`fs.watchFile`
    // took its first stat on the thread pool after it started, so a change made in between
    // became its baseline and was never reloaded: the tokens test saw a rotation missed.)
    let seen: Stats | undefined = statSync(path);
    const auth = TokenAuthenticator.fromFile(path);
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
    this.entries = file.tokens.map((t) => ({ digest: Buffer.from(t.sha256, 'hex'), principal: { tenant: t.tenant, role: t.role } }));
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
    let found: Principal | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, digest)) found = e.principal;
    if (!found) throw new ApiError(ErrorCode.Unauthenticated, 'the bearer token is not valid', { field: 'Authorization' });
    return found;
  }

  /** As `authenticate`, and the token must be an operator's (else `permission_denied`, naming what needs one). */
  authenticateOperator(header: string | undefined, what: string): Principal {
    const p = this.authenticate(header);
    if (p.role !== 'operator') throw new ApiError(ErrorCode.PermissionDenied, `${what} are managed by operators; use an operator token`);
    return p;
  }
}

type TokensFile = { tokens: Array<{ sha256: string; tenant: string; role: 'tenant' | 'operator' }> };

function readTokensFile(path: string): TokensFile {
  return parseWith(TokensFileSchema, JSON.parse(readFileSync(path, 'utf8')), path);
}
