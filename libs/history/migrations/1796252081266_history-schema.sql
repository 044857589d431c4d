-- Up Migration

-- The history of finished work (issue 20): what etcd no longer keeps once the archiver has moved
-- a finished job or workflow here. Every table is partitioned by month of `finished_at` (UTC) so
-- retention drops a month at once and never deletes rows; the partitions themselves are created
-- on demand by `ensurePartitions` (src/partitions.ts), never by a migration. A job's tasks and
-- results carry its `finished_at` so that they live and are dropped in the same month as the job.
-- Times are `timestamptz`, written from epoch milliseconds; ids and names are the etcd records'.

-- One row per finished job: the `JobRecord` it was in etcd, with the columns the list filters
-- use pulled out of its spec (name, labels, workflow).
CREATE TABLE jobs (
  id text NOT NULL,
  tenant text NOT NULL,
  queue text NOT NULL,
  -- spec.name
  name text NOT NULL,
  phase text NOT NULL,
  reason_code text,
  reason_message text,
  -- spec.labels, for `labels @> {...}`
  labels jsonb NOT NULL DEFAULT '{}',
  spec jsonb NOT NULL,
  -- task ranges still unbound when the job ended (e.g. a cancelled queued job)
  pending jsonb NOT NULL DEFAULT '[]',
  succeeded integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  cancelled integer NOT NULL DEFAULT 0,
  -- spec.tasks
  tasks integer NOT NULL,
  -- the `batch.workflow` label of a workflow step's job
  workflow_id text,
  traceparent text,
  created_at timestamptz NOT NULL,
  queued_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz NOT NULL,
  cancel_requested_at timestamptz,
  -- when the archiver first wrote the row
  archived_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, finished_at)
) PARTITION BY RANGE (finished_at);

-- Lists are newest-finished first with (finished_at, id) as the cursor: every list index ends in
-- those two columns so a page is an index range scan whatever the filter.
CREATE INDEX jobs_finished_idx ON jobs (finished_at DESC, id DESC);
CREATE INDEX jobs_tenant_finished_idx ON jobs (tenant, finished_at DESC, id DESC);
CREATE INDEX jobs_queue_finished_idx ON jobs (queue, finished_at DESC, id DESC);
CREATE INDEX jobs_phase_finished_idx ON jobs (phase, finished_at DESC, id DESC);
CREATE INDEX jobs_labels_idx ON jobs USING gin (labels jsonb_path_ops);
CREATE INDEX jobs_workflow_idx ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;
-- name prefix search (`name LIKE 'prefix%'`) whatever the database's collation
CREATE INDEX jobs_name_prefix_idx ON jobs (name text_pattern_ops);

-- One row per task attempt: a group `[start, end)` of a job on one node at one attempt becomes
-- one row per index in it.
CREATE TABLE tasks (
  job_id text NOT NULL,
  -- the job's finished_at: the partition key
  finished_at timestamptz NOT NULL,
  index integer NOT NULL,
  attempt integer NOT NULL,
  node text NOT NULL,
  state text NOT NULL,
  exit_code integer,
  reason text,
  signal text,
  -- when the scheduler bound the attempt's group (queue wait = bound_at - the job's queued_at)
  bound_at timestamptz,
  started_at timestamptz,
  ended_at timestamptz,
  PRIMARY KEY (job_id, finished_at, index, attempt)
) PARTITION BY RANGE (finished_at);

-- "which tasks failed": a job's tasks in one state, in task order
CREATE INDEX tasks_job_state_idx ON tasks (job_id, state, index, attempt);

-- What each task returned (`TaskResult`), only tasks that returned something.
CREATE TABLE results (
  job_id text NOT NULL,
  finished_at timestamptz NOT NULL,
  index integer NOT NULL,
  -- the attempt whose result this is
  attempt integer NOT NULL,
  value jsonb,
  PRIMARY KEY (job_id, finished_at, index)
) PARTITION BY RANGE (finished_at);

-- One row per finished workflow: its `WorkflowRecord` (steps and their jobs) as it ended.
CREATE TABLE workflows (
  id text NOT NULL,
  tenant text NOT NULL,
  queue text NOT NULL,
  name text NOT NULL,
  phase text NOT NULL,
  record jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, finished_at)
) PARTITION BY RANGE (finished_at);

CREATE INDEX workflows_tenant_finished_idx ON workflows (tenant, finished_at DESC, id DESC);

-- Down Migration

DROP TABLE workflows;
DROP TABLE results;
DROP TABLE tasks;
DROP TABLE jobs;
