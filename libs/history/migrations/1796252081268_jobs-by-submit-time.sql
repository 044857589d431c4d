-- Up Migration

-- `GET /v1/jobs?submittedAfter=…&submittedBefore=…`: a window of submit times is an index range
-- (the planner reads it and sorts the few rows it finds, rather than walking every job in id
-- order to test each one's time); within a tenant too, since every tenant lists only its own.
CREATE INDEX jobs_created_idx ON jobs (created_at);
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at);

-- Down Migration

DROP INDEX jobs_tenant_created_idx;
DROP INDEX jobs_created_idx;
