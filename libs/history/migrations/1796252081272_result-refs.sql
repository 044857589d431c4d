-- Up Migration

-- A result over the inline cap (64 KiB) is kept in the blob store; its row holds the reference
-- (`{"sizeBytes": …, "sha256": "…"}`) instead of the value. Added to the partitioned parent, so to
-- every month's partition.
ALTER TABLE results ADD COLUMN ref jsonb;

-- Down Migration

ALTER TABLE results DROP COLUMN ref;
