-- Up Migration

-- The step cache (memoized workflow steps, `cache: true`): a step of a tenant whose cache key (a
-- digest of its command, environment, code, inputs and cacheVersion) matches an entry reuses the
-- entry's job, whose results history keeps. One row per (tenant, key): never shared across
-- tenants. Not partitioned: bounded per tenant (oldest evicted past a limit) and expired by age.
CREATE TABLE step_cache (
  tenant text NOT NULL,
  cache_key text NOT NULL,
  -- the job that produced the results, and the run and step it was part of
  job_id text NOT NULL,
  workflow_id text NOT NULL,
  step text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, cache_key)
);

-- eviction and expiry walk a tenant's entries by age
CREATE INDEX step_cache_tenant_created_idx ON step_cache (tenant, created_at);

-- Down Migration

DROP TABLE step_cache;
