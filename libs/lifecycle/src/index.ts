/**
 * `@batchapi/lifecycle`: how the records BatchAPI keeps in etcd change, as pure functions — the
 * job state machine (`markBound`, `settleOutcomes`, retries and their backoff, `requestCancel`,
 * `failPending`), the node allocation arithmetic every bind and release is a CAS of
 * (`reserveOnNode`, `releaseEndedTasks`), and the node quarantine policy. The records themselves
 * are vocabulary every layer shares (`@batchapi/api`); the store applies these functions inside
 * its transactions, the scheduler and executor decide with them.
 */
export * from './lifecycle';
export * from './quarantine';
