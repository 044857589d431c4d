-- Up Migration

-- `GET /v1/usage?groupBy=gpuModel`: GPU-hours by model. The model is the `gpu.model` label of
-- the node an attempt was bound to, which the scheduler records on the group at bind time (the
-- node may be long gone when the job is archived). Null for attempts without GPUs, and for rows
-- archived before this column existed.
ALTER TABLE tasks ADD COLUMN gpu_model text;

-- Usage reads attempts by when they ended, in a window: within the partitions of the window's
-- months, an index range rather than every attempt of those months.
CREATE INDEX tasks_ended_idx ON tasks (ended_at);

-- Down Migration

DROP INDEX tasks_ended_idx;
ALTER TABLE tasks DROP COLUMN gpu_model;
