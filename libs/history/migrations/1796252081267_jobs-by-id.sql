-- Up Migration

-- The API lists live jobs (etcd, in key order: by job id) and archived ones as one list in job id
-- order, paged by the last id (`HistoryStore.listJobsById`). The primary key (id, finished_at)
-- gives that order over all jobs; these give it within a tenant (every tenant's own list) and a
-- queue, so a page is an index range scan however few of the rows are the caller's. Ids are
-- compared byte by byte (COLLATE "C"), as etcd orders keys: a database collation such as
-- en_US would order '-' and case differently and the two halves of a page would not merge.
CREATE INDEX jobs_id_c_idx ON jobs ((id COLLATE "C"));
CREATE INDEX jobs_tenant_id_idx ON jobs (tenant, (id COLLATE "C"));
CREATE INDEX jobs_queue_id_idx ON jobs (queue, (id COLLATE "C"));

-- Down Migration

DROP INDEX jobs_queue_id_idx;
DROP INDEX jobs_tenant_id_idx;
DROP INDEX jobs_id_c_idx;
