/**
 * Bearer-token authentication. The tokens file holds only SHA-256 digests of tokens, each
 * naming a tenant and a role; a presented token is hashed and compared in constant time.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ApiError, ErrorCode, parseWith, type Principal, TokensFileSchema } from '@batchapi/api';

export class TokenAuthenticator {
  private readonly entries: Array<{ digest: Buffer; principal: Principal }>;

  constructor(file: { tokens: Array<{ sha256: string; tenant: string; role: 'tenant' | 'operator' }> }) {
    this.entries = file.tokens.map((t) => ({ digest: Buffer.from(t.sha256, 'hex'), principal: { tenant: t.tenant, role: t.role } }));
  }

  /** Loads a tokens file (`BATCH_TOKENS_FILE`); a malformed file stops the service at start. */
  static fromFile(path: string): TokenAuthenticator {
    return new TokenAuthenticator(parseWith(TokensFileSchema, JSON.parse(readFileSync(path, 'utf8')), path));
  }

  /** Resolves an `Authorization` header to a principal or throws `unauthenticated`. */
  authenticate(header: string | undefined): Principal {
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header ?? '');
    if (!m) throw new ApiError(ErrorCode.Unauthenticated, 'send "Authorization: Bearer <token>"', { field: 'Authorization' });
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
