/**
 * `@batchapi/history`: finished work in PostgreSQL (issue 20). etcd keeps live work only; when a
 * job or workflow ends, the archiver writes it here (`HistoryStore.archiveJobs`) and deletes it
 * from etcd, and the API answers from here once it is gone from etcd. Also: the schema's
 * migrations (`migrate`), monthly partitions and their retention, and a local PostgreSQL for
 * tests and `batch dev` (`startPostgres`).
 */
export * from './history-store';
export { BLOB_CHUNK_BYTES, type BlobInfo, MAX_BLOB_KEY_LENGTH } from './blobs';
export { MIGRATIONS_DIR, MIGRATIONS_TABLE, migrate, type MigrateOptions } from './migrate';
export * from './partitions';
export * from './postgres-server';
export type { StepCacheBounds, StepCacheEntry } from './step-cache';
export { HistoryError, HistoryUnavailableError, InvalidHistoryRequestError, isUnavailable } from './errors';
export {
  MAX_RUNTIME_ESTIMATE_QUEUES,
  MAX_USAGE_GROUPS,
  MAX_USAGE_WINDOW_MS,
  type RuntimeEstimateQuery,
  type RuntimeEstimateRow,
  type UsageGroupBy,
  type UsageQuery,
  type UsageRow,
} from './usage';
