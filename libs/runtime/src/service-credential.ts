/**
 * The shared service credential: one secret every BatchAPI process of a cluster holds, sent
 * on every call one service makes to another (admission → executor `/internal/*`, admission →
 * scheduler RPC) and checked by the receiver in constant time. Task pods of the Kubernetes
 * backend share the services' namespace, so the network alone does not say who is calling.
 *
 * Where it comes from: `BATCH_SERVICE_TOKEN_FILE` (a file holding the token, e.g. a mounted
 * Kubernetes Secret; preferred, since a task of the process backend runs as the executor's
 * user and could read the executor's environment) or `BATCH_SERVICE_TOKEN`. The services
 * that serve or make internal calls refuse to start without one (`requireServiceToken`);
 * services started in-process without one (tests) share a random token of their process,
 * so nothing outside the process can call them.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SERVICE_ENV } from './config';
import { parseEnv } from './env';

/** Fewest characters of a service token: guessing must stay out of reach (the generated ones have 43). */
export const MIN_SERVICE_TOKEN_LENGTH = 32;
const TOKEN_SHAPE = /^[\x21-\x7e]+$/;
/** The variables naming the token (documented with the other `SERVICE_ENV` variables). */
const TOKEN_ENV = SERVICE_ENV.pick({ BATCH_SERVICE_TOKEN_FILE: true, BATCH_SERVICE_TOKEN: true });

/** The service token is missing or malformed; names the variable to set. */
export class ServiceTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceTokenError';
  }
}

/** Why a call was refused: the label `reason` of `batch_internal_calls_refused_total`. */
export type CredentialRefusal = 'missing' | 'invalid';

/** A fresh token for a launcher to hand to the services it starts (`batch dev`, test harnesses). */
export function newServiceToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The token the environment names: the trimmed content of `BATCH_SERVICE_TOKEN_FILE`, else
 * `BATCH_SERVICE_TOKEN`; undefined when neither is set. A token that is too short or not
 * printable ASCII throws `ServiceTokenError`.
 */
export function serviceTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const e = parseEnv(TOKEN_ENV, env);
  let token: string | undefined;
  let from = 'BATCH_SERVICE_TOKEN';
  if (e.BATCH_SERVICE_TOKEN_FILE) {
    from = `the file ${e.BATCH_SERVICE_TOKEN_FILE} (BATCH_SERVICE_TOKEN_FILE)`;
    try {
      token = readFileSync(e.BATCH_SERVICE_TOKEN_FILE, 'utf8').trim();
    } catch (err) {
      throw new ServiceTokenError(`cannot read the service token from ${from}: ${(err as Error).message}`);
    }
  } else token = e.BATCH_SERVICE_TOKEN;
  if (token === undefined) return undefined;
  if (token.length < MIN_SERVICE_TOKEN_LENGTH || !TOKEN_SHAPE.test(token)) {
    throw new ServiceTokenError(
      `the service token in ${from} must be at least ${MIN_SERVICE_TOKEN_LENGTH} printable ASCII characters without spaces; make one with \`openssl rand -base64 32\``,
    );
  }
  return token;
}

/**
 * For the main of a service that serves or makes internal calls: the token from the
 * environment, or a message on stderr and exit code 2 when it is absent or malformed.
 */
export function requireServiceToken(service: string, env: NodeJS.ProcessEnv = process.env): string {
  try {
    const token = serviceTokenFromEnv(env);
    if (token) return token;
    console.error(
      `${service}: set BATCH_SERVICE_TOKEN_FILE (or BATCH_SERVICE_TOKEN) to the cluster's shared service token; every admission, quota, scheduler and executor needs the same one (see docs/security.md)`,
    );
  } catch (err) {
    console.error(`${service}: ${(err as Error).message}`);
  }
  return process.exit(2);
}

let processToken: string | undefined;

/** The credential a process presents and accepts on internal calls. */
export class ServiceCredential {
  private readonly digest: Buffer;

  constructor(private readonly token: string) {
    this.digest = sha256(token);
  }

  /** From the environment, else the random token shared by every service of this process. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): ServiceCredential {
    return new ServiceCredential(serviceTokenFromEnv(env) ?? (processToken ??= newServiceToken()));
  }

  /**
   * A key for `purpose` derived from the token (HMAC-SHA256 of the purpose): what one service signs
   * and another checks with (e.g. a step's inputs token), never the token itself.
   */
  derive(purpose: string): Buffer {
    return createHmac('sha256', this.token).update(purpose).digest();
  }

  /** The `Authorization` header value of an internal call. */
  authorization(): string {
    return `Bearer ${this.token}`;
  }

  /**
   * Checks an `Authorization` header of an internal call: undefined when it carries this
   * credential, else why not. Digests of equal length are compared in constant time, so the
   * time taken says nothing about how much of a guess was right.
   */
  refusal(header: string | undefined): CredentialRefusal | undefined {
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header ?? '');
    if (!m) return 'missing';
    return timingSafeEqual(sha256(m[1]), this.digest) ? undefined : 'invalid';
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
