-- Up Migration

-- `GET /v1/workflows?template=<name>`: the archived runs of a workflow template (the
-- `batch.template` label of their record), most recently finished first, within a tenant, as an
-- index range rather than a walk over every workflow of the tenant (an operator's, over every
-- tenant, reads the template's runs and sorts them).
CREATE INDEX workflows_template_finished_idx ON workflows ((record -> 'labels' ->> 'batch.template'), tenant, finished_at DESC, id DESC)
  WHERE (record -> 'labels' ->> 'batch.template') IS NOT NULL;

-- Down Migration

DROP INDEX workflows_template_finished_idx;
