/**
 * Tokens with `expiresAt`: accepted until that instant, refused from it with 401
 * `unauthenticated` naming when it expired; the expiry gauge shows each one that expires, and a
 * tokens file with a malformed expiry or name is refused whole, naming the field.
 */
import { createHash } from 'node:crypto';
import { ApiError, parseWith, TokensFileSchema } from '@batchapi/api';
import { Registry } from 'prom-client';
import { TokenAuthenticator, tokenExpiryGauge } from '../src/auth';

const digest = (t: string) => createHash('sha256').update(t).digest('hex');
const T0 = Date.parse('2027-01-01T00:00:00Z');

/** The error `authenticate` throws for `token`, or the tenant it accepts. */
function outcome(auth: TokenAuthenticator, token: string): string | ApiError {
  try {
    return auth.authenticate(`Bearer ${token}`).tenant;
  } catch (e) {
    return e as ApiError;
  }
}

describe('token expiry', () => {
  let now = T0;
  const file = parseWith(TokensFileSchema, {
    tokens: [
      { sha256: digest('forever'), tenant: 'a', role: 'tenant' },
      { sha256: digest('ci'), tenant: 'b', role: 'tenant', expiresAt: '2027-01-01T01:00:00Z', name: 'ci-pipeline' },
      // an offset other than Z: 02:00 at +02:00 is 00:00 UTC, the instant the test starts at
      { sha256: digest('ops'), tenant: 'c', role: 'operator', expiresAt: '2027-01-01T02:00:00+02:00' },
    ],
  });
  const auth = new TokenAuthenticator(file, () => now);

  it.each([
    // [what, ms after T0, forever, ci, ops]
    ['before either expiry', -1, 'a', 'b', 'c'],
    ['at the +02:00 expiry (00:00 UTC): refused from that instant', 0, 'a', 'b', 'expired'],
    ['1 ms before the ci token expires (3,600,000 ms)', 3_599_999, 'a', 'b', 'expired'],
    ['at it', 3_600_000, 'a', 'expired', 'expired'],
    ['a year on: a token without expiresAt still works', 365 * 86_400_000, 'a', 'expired', 'expired'],
  ])('%s', (_what, after, forever, ci, ops) => {
    now = T0 + (after as number);
    const seen = ['forever', 'ci', 'ops'].map((t) => {
      const o = outcome(auth, t);
      return typeof o === 'string' ? o : 'expired';
    });
    expect(seen).toEqual([forever, ci, ops]);
  });

  it('says when an expired token expired, with the code and field of any refused token', () => {
    now = T0 + 3_600_000;
    const e = outcome(auth, 'ci') as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect([e.code, e.status, e.details.field]).toEqual(['unauthenticated', 401, 'Authorization']);
    expect(e.message).toContain('expired at 2027-01-01T01:00:00.000Z');
    // an unknown token says nothing of expiry
    expect((outcome(auth, 'unknown') as ApiError).message).toBe('the bearer token is not valid');
  });

  it('shows each token that expires on the gauge, by tenant, role and name (the digest prefix when unnamed)', async () => {
    const registry = new Registry();
    tokenExpiryGauge(auth, registry);
    const text = await registry.metrics();
    const series = text.split('\n').filter((l) => l.startsWith('batch_admission_token_expiry_timestamp_seconds{'));
    expect(series.sort()).toEqual(
      [
        `batch_admission_token_expiry_timestamp_seconds{tenant="b",role="tenant",name="ci-pipeline"} ${(T0 + 3_600_000) / 1000}`,
        `batch_admission_token_expiry_timestamp_seconds{tenant="c",role="operator",name="${digest('ops').slice(0, 12)}"} ${T0 / 1000}`,
      ].sort(),
    );
  });
});

describe('the tokens file', () => {
  const entry = { sha256: digest('x'), tenant: 'a', role: 'tenant' };
  it.each([
    ['an expiry without an offset', { expiresAt: '2027-01-01T00:00:00' }, 'tokens.0.expiresAt'],
    ['an expiry that is no date', { expiresAt: 'next week' }, 'tokens.0.expiresAt'],
    ['a name with a space', { name: 'my token' }, 'tokens.0.name'],
    ['a name over 63 characters', { name: 'n'.repeat(64) }, 'tokens.0.name'],
    ['an unknown field', { expires: '2027-01-01T00:00:00Z' }, 'tokens.0.expires'],
  ])('refuses %s, naming the field', (_what, extra, field) => {
    let err: unknown;
    try {
      parseWith(TokensFileSchema, { tokens: [{ ...entry, ...extra }] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect([(err as ApiError).code, (err as ApiError).details.field]).toEqual(['invalid_argument', field]);
  });

  it.each([
    ['a digest given twice', [entry, { ...entry, tenant: 'b' }], 'tokens.1.sha256'],
    [
      'a name given twice',
      [
        { ...entry, name: 'ci' },
        { sha256: digest('y'), tenant: 'a', role: 'tenant', name: 'ci' },
      ],
      'tokens.1.name',
    ],
  ])('refuses %s, naming the later entry', (_what, tokens, field) => {
    let err: unknown;
    try {
      parseWith(TokensFileSchema, { tokens });
    } catch (e) {
      err = e;
    }
    expect([(err as ApiError).code, (err as ApiError).details.field]).toEqual(['invalid_argument', field]);
  });

  it('holds at most 10,000 tokens', () => {
    const many = (n: number) => ({ tokens: Array.from({ length: n }, (_, i) => ({ ...entry, sha256: digest(`t${i}`) })) });
    expect(() => parseWith(TokensFileSchema, many(10_000))).not.toThrow();
    expect(() => parseWith(TokensFileSchema, many(10_001))).toThrow(ApiError);
  });
});
