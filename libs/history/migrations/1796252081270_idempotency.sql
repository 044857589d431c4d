-- Up Migration

-- The idempotency records of archived jobs: a submit retried with the same Idempotency-Key after
-- its job left etcd still gets that job (within BATCH_IDEMPOTENCY_TTL), and etcd keeps records of
-- live jobs only. One row per (tenant, digest of the key); not partitioned: rows are dropped by
-- age (created_at) in batches, a day's worth at most of a busy cluster, not months.
CREATE TABLE idempotency (
  tenant text NOT NULL,
  -- sha256 of the client's key, as the etcd record's key holds it
  key_digest text NOT NULL,
  job_id text NOT NULL,
  -- sha256 of the canonical request: the key reused with another body is refused
  request_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, key_digest)
);

CREATE INDEX idempotency_created_idx ON idempotency (created_at);

-- Down Migration

DROP TABLE idempotency;
