/**
 * What a submit's idempotency key says once the submit's compare on it failed: the key's first
 * submit, shared by jobs and workflows (each stores its own record under the key).
 */
import type { EtcdStore } from './etcd';
import { IdempotencyConflictError } from './errors';

/**
 * The id of the `what` an idempotency key was first used for, read from its record at
 * `idemKey` (`idOf` names it): this submit is a retry of that one. The key used with another
 * request is `IdempotencyConflictError` `differentRequest`; a record not readable yet (a
 * concurrent submit took the key) is `raced`.
 */
export async function firstSubmitOf<R extends { requestHash: string }>(
  store: EtcdStore,
  idemKey: string,
  requestHash: string,
  what: 'job' | 'workflow',
  idOf: (record: R) => string,
): Promise<string> {
  const prior = await store.get<R>(idemKey);
  if (!prior) throw new IdempotencyConflictError('the submit raced with another on its idempotency key', 'raced');
  const id = idOf(prior.value);
  if (prior.value.requestHash !== requestHash) {
    throw new IdempotencyConflictError(`the idempotency key was already used for ${what} ${id} with a different request`, 'differentRequest', id);
  }
  return id;
}
