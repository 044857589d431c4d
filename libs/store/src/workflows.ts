/**
 * Workflow records at `workflows/{id}`: the durable submit with its idempotency key, CAS
 * updates, listing, the cancel request, and the controller's fenced writes (step jobs
 * created only if absent under fixed ids, then the record).
 */
import { type JobRecord, TEMPLATE_LABEL, TERMINAL_WORKFLOW_PHASES, type WorkflowRecord } from '@batchapi/api';
import { DEFAULT_TXN_LIMITS, type TxnLimits, txnSize, withinTxnLimits } from './chunks';
import type { TxnSender } from './group-commit';
import { type Compare, encodedPut, type EtcdStore, type Op, type Versioned } from './etcd';
import { CasConflictError } from './errors';
import { firstSubmitOf } from './idempotency';
import { MAX_CAS_ATTEMPTS, sha256 } from './jobs';

interface WorkflowIdempotencyRecord {
  workflowId: string;
  requestHash: string;
  createdAt: number;
}

/**
 * Commits a new workflow before anyone answers. With an idempotency key, a retry returns the
 * first workflow (`created: false`); the same key with another body is `IdempotencyConflictError`.
 */
export async function submitWorkflow(
  store: EtcdStore,
  wf: WorkflowRecord,
  idempotency?: { key: string; requestHash: string },
): Promise<{ workflow: WorkflowRecord; created: boolean }> {
  const key = store.keys.workflow(wf.id);
  const compares: Compare[] = [{ key, absent: true }];
  const idemKey = idempotency ? store.keys.idempotency(wf.tenant, sha256(`workflow\n${idempotency.key}`)) : undefined;
  const ops = [{ put: key, value: wf as unknown }];
  if (idemKey && idempotency) {
    compares.push({ key: idemKey, absent: true });
    ops.push({ put: idemKey, value: { workflowId: wf.id, requestHash: idempotency.requestHash, createdAt: wf.createdAt } satisfies WorkflowIdempotencyRecord });
  }
  const res = await store.txn(compares, ops);
  if (res.succeeded) return { workflow: wf, created: true };
  if (!idemKey || !idempotency) throw new CasConflictError(`workflow ${wf.id} already exists`, wf.id);
  const workflowId = await firstSubmitOf(store, idemKey, idempotency.requestHash, 'workflow', (r: WorkflowIdempotencyRecord) => r.workflowId);
  const existing = await getWorkflow(store, workflowId);
  if (!existing) throw new CasConflictError(`workflow ${workflowId} of this idempotency key is gone`, workflowId);
  return { workflow: existing.value, created: false };
}

export async function getWorkflow(store: EtcdStore, id: string): Promise<Versioned<WorkflowRecord> | undefined> {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return undefined;
  return store.get<WorkflowRecord>(store.keys.workflow(id));
}

/** Lists workflows in id order (time-ordered), optionally one tenant's and one template's runs (`batch.template` label), at most `limit`. */
export async function listWorkflows(store: EtcdStore, f: { tenant?: string; template?: string; limit?: number } = {}): Promise<WorkflowRecord[]> {
  const out: WorkflowRecord[] = [];
  const limit = f.limit ?? 100;
  let after: string | undefined;
  for (;;) {
    const page = await store.list<WorkflowRecord>(store.keys.workflows(), { limit: 500, startAfter: after });
    for (const kv of page.items) {
      if (f.tenant && kv.value.tenant !== f.tenant) continue;
      if (f.template !== undefined && kv.value.labels?.[TEMPLATE_LABEL] !== f.template) continue;
      out.push(kv.value);
      if (out.length === limit) return out;
    }
    if (!page.more || page.items.length === 0) return out;
    after = page.items[page.items.length - 1].key;
  }
}

/** Marks a workflow cancelled (CAS); the controller cascades it. Unchanged once finished or already asked. */
export async function requestWorkflowCancel(store: EtcdStore, id: string, now: number): Promise<WorkflowRecord | undefined> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await getWorkflow(store, id);
    if (!cur) return undefined;
    if (TERMINAL_WORKFLOW_PHASES.has(cur.value.phase) || cur.value.cancelRequestedAt !== undefined) return cur.value;
    const next = { ...cur.value, cancelRequestedAt: now };
    if ((await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ put: cur.key, value: next }])).succeeded) return next;
  }
  throw new CasConflictError(`workflow ${id} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, id);
}

/**
 * Creates a step's job under its fixed id, fenced by the controller's leadership, only if
 * absent: `created`, or `exists` when an earlier controller (or this one, before a crash)
 * already created it — a step is never submitted twice. `fenced` when the fence failed.
 */
export async function createStepJob(store: EtcdStore, fence: Compare, job: JobRecord): Promise<'created' | 'exists' | 'fenced'> {
  const key = store.keys.job(job.id);
  const res = await store.txn([fence, { key, absent: true }], [{ put: key, value: job }]);
  if (res.succeeded) return 'created';
  const fenceOk = await store.txn([fence], []);
  return fenceOk.succeeded ? 'exists' : 'fenced';
}

/**
 * The controller's CAS of a workflow record, fenced by its leadership. Undefined when either compare failed.
 * @param send - how the transaction is sent: a `GroupCommit`'s `txn` batches it with other reconciles' writes. @default store.txn
 */
export async function putWorkflowFenced(
  store: EtcdStore,
  fence: Compare,
  cur: Versioned<WorkflowRecord>,
  next: WorkflowRecord,
  send: TxnSender = (c, o) => store.txn(c, o),
): Promise<string | undefined> {
  const res = await send([fence, { key: cur.key, modRevision: cur.modRevision }], [encodedPut(cur.key, next)]);
  return res.succeeded ? res.revision : undefined;
}

/**
 * The controller's usual write as one transaction, fenced by its leadership: step jobs created
 * under their fixed ids, each only if absent, and the workflow record's compare-and-swap to
 * `next` (which names those jobs). All or nothing: the revision written, or undefined when any
 * compare failed (a job already there, the record changed, the fence gone) or it would be over
 * `limits`; then nothing was written and the caller falls back to `createStepJob` one job at a
 * time and `putWorkflowFenced`, which tell an existing job (adopted) from a lost fence. One round
 * trip instead of one per job plus one for the record; a crash cannot fall between the jobs and
 * the record that names them.
 */
export async function submitStepJobsFenced(
  store: EtcdStore,
  fence: Compare,
  jobs: readonly JobRecord[],
  cur: Versioned<WorkflowRecord>,
  next: WorkflowRecord,
  /** The transaction's limits. @default DEFAULT_TXN_LIMITS */
  limits: TxnLimits = DEFAULT_TXN_LIMITS,
  /** How the transaction is sent: a `GroupCommit`'s `txn` batches it with other reconciles' writes. @default store.txn */
  send: TxnSender = (c, o) => store.txn(c, o),
): Promise<string | undefined> {
  const compares: Compare[] = [fence, { key: cur.key, modRevision: cur.modRevision }];
  const ops: Op[] = [];
  for (const job of jobs) {
    const key = store.keys.job(job.id);
    compares.push({ key, absent: true });
    ops.push(encodedPut(key, job));
  }
  ops.push(encodedPut(cur.key, next));
  // sized and sent from the same JSON: each record serialized once
  if (!withinTxnLimits(txnSize(compares, ops), limits)) return undefined;
  const res = await send(compares, ops);
  return res.succeeded ? res.revision : undefined;
}
