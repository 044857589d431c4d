/**
 * Workflow templates at `workflow-templates/{tenant}/{name}`: a put that adds a version by
 * compare-and-swap (or creates the record only if absent), read, list and delete. The record
 * keeps its latest versions (`putTemplateVersion`, pure, decides what a put changes).
 */
import { type PutWorkflowTemplateRequest, putTemplateVersion, type WorkflowTemplateRecord } from '@batchapi/api';
import type { EtcdStore, Versioned } from './etcd';
import { CasConflictError } from './errors';
import { MAX_CAS_ATTEMPTS } from './jobs';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Puts a version of a template: a new version when its content differs from the latest, else
 * the record unchanged (`changed: false`). Created when the tenant has none of that name.
 * @throws CasConflictError when it changed on each of `MAX_CAS_ATTEMPTS` tries
 */
export async function putWorkflowTemplate(
  store: EtcdStore,
  id: { tenant: string; name: string },
  content: Pick<PutWorkflowTemplateRequest, 'description' | 'workflow'> & { parameters: NonNullable<PutWorkflowTemplateRequest['parameters']> },
  now: number,
): Promise<{ record: WorkflowTemplateRecord; changed: boolean }> {
  const key = store.keys.workflowTemplate(id.tenant, id.name);
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await store.get<WorkflowTemplateRecord>(key);
    const next = putTemplateVersion(cur?.value, id, content, now);
    if (!next.changed) return next;
    const compare = cur ? { key, modRevision: cur.modRevision } : { key, absent: true as const };
    if ((await store.txn([compare], [{ put: key, value: next.record }])).succeeded) return next;
  }
  throw new CasConflictError(`workflow template ${id.name} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, id.name);
}

/** The template, or undefined (also for a name that could not be one). */
export async function getWorkflowTemplate(store: EtcdStore, tenant: string, name: string): Promise<Versioned<WorkflowTemplateRecord> | undefined> {
  if (!NAME.test(tenant) || !NAME.test(name) || tenant.length > 63 || name.length > 63) return undefined;
  return store.get<WorkflowTemplateRecord>(store.keys.workflowTemplate(tenant, name));
}

/** Lists templates in tenant, then name order; one tenant's when `tenant` is set; at most `limit` (default 100). */
export async function listWorkflowTemplates(store: EtcdStore, f: { tenant?: string; limit?: number } = {}): Promise<WorkflowTemplateRecord[]> {
  const prefix = f.tenant ? store.keys.workflowTemplatesOf(f.tenant) : store.keys.workflowTemplates();
  const limit = f.limit ?? 100;
  const out: WorkflowTemplateRecord[] = [];
  let after: string | undefined;
  for (;;) {
    // records are up to 512 KiB each (MAX_WORKFLOW_TEMPLATE_RECORD_BYTES): pages of 5 stay under gRPC's 4 MiB answer
    const page = await store.list<WorkflowTemplateRecord>(prefix, { limit: Math.min(5, limit), startAfter: after });
    for (const kv of page.items) {
      out.push(kv.value);
      if (out.length === limit) return out;
    }
    if (!page.more || page.items.length === 0) return out;
    after = page.items[page.items.length - 1].key;
  }
}

/** Deletes a template by compare-and-swap on what was read (its runs stay). Returns the deleted record, or undefined when there was none. */
export async function deleteWorkflowTemplate(store: EtcdStore, tenant: string, name: string): Promise<WorkflowTemplateRecord | undefined> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await getWorkflowTemplate(store, tenant, name);
    if (!cur) return undefined;
    if ((await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ delete: cur.key }])).succeeded) return cur.value;
  }
  throw new CasConflictError(`workflow template ${name} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, name);
}
