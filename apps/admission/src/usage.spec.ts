import { ApiError, type Principal } from '@batchapi/api';
import { usageOf } from './usage.controller';

const tenant: Principal = { tenant: 'acme', role: 'tenant' };
const NOW = Date.UTC(2026, 11, 3);

async function errorOf(query: Record<string, string>, who: Principal = tenant): Promise<ApiError> {
  const err = await usageOf(who, query, NOW, undefined).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('usageOf: bad questions fail before the history is asked, naming the field', () => {
  it.each([
    [{ groupBy: 'user' }, 'groupBy'],
    [{ groupBy: 'label:' }, 'groupBy'],
    [{ from: 'last week' }, 'from'],
    [{ from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z' }, 'to'],
    // 2025-01-01 → 2026-12-01 is 699 days: over 400
    [{ from: '2025-01-01T00:00:00Z', to: '2026-12-01T00:00:00Z' }, 'to'],
    [{ extra: 'x' }, 'extra'],
  ])('%j → invalid_argument on %s', async (query, field) => {
    expect(await errorOf(query)).toMatchObject({ code: 'invalid_argument', details: { field } });
  });

  it("refuses a tenant another tenant's usage", async () => {
    expect(await errorOf({ tenant: 'globex' })).toMatchObject({ code: 'permission_denied', details: { field: 'tenant' } });
  });

  it('says unavailable, and why, without a history store', async () => {
    const err = await errorOf({ groupBy: 'label:team' }, { tenant: 'ops', role: 'operator' });
    expect(err).toMatchObject({ code: 'unavailable' });
    expect(err.message).toMatch(/BATCH_HISTORY_URL/);
  });
});
