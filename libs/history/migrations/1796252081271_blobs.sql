-- Up Migration

-- Blobs kept past their node: task logs (and, later, large results and working-dir packages)
-- when the history database is the blob store (BATCH_BLOB_STORE=postgres). A blob is one row of
-- `blobs` and its bytes in chunks of at most 1 MiB in `blob_chunks` (one bytea value is never
-- larger than a chunk, whatever the blob's size). Rows are dropped by age (created_at) in
-- batches with history retention; a put replaces a blob whole, in one transaction.
CREATE TABLE blobs (
  -- bytewise order (C collation): a key prefix is a range of the primary key's index
  key text COLLATE "C" PRIMARY KEY,
  content_type text NOT NULL,
  -- 'gzip' when the bytes are gzip-compressed, else 'identity'
  content_encoding text NOT NULL,
  size_bytes bigint NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE INDEX blobs_created_idx ON blobs (created_at);

CREATE TABLE blob_chunks (
  key text COLLATE "C" NOT NULL REFERENCES blobs (key) ON DELETE CASCADE,
  seq integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (key, seq)
);

-- Down Migration

DROP TABLE blob_chunks;
DROP TABLE blobs;
