/**
 * Schedules (cron jobs and cron workflows) at `schedules/{tenant}/{name}`: create only if
 * absent, read, list, delete and user changes (pause, resume, trigger-now) by compare-and-swap,
 * and the schedule controller's fenced writes — above all `fireScheduleTick`, which records a
 * tick and creates its job or workflow in one transaction, so a controller killed at any point
 * can neither fire a tick twice nor lose it.
 */
import type { JobRecord, ScheduleRecord, WorkflowRecord } from '@batchapi/api';
import type { Compare, EtcdStore, Op, Versioned } from './etcd';
import { CasConflictError } from './errors';
import { MAX_CAS_ATTEMPTS } from './jobs';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Creates a schedule only if its tenant has none of that name. @throws CasConflictError when it exists */
export async function createSchedule(store: EtcdStore, s: ScheduleRecord): Promise<Versioned<ScheduleRecord>> {
  const key = store.keys.schedule(s.tenant, s.name);
  const res = await store.txn([{ key, absent: true }], [{ put: key, value: s }]);
  if (!res.succeeded) throw new CasConflictError(`schedule ${s.name} already exists in tenant ${s.tenant}`, s.name);
  return { key, value: s, modRevision: res.revision, createRevision: res.revision };
}

/** The schedule, or undefined (also for a name that could not be one). */
export async function getSchedule(store: EtcdStore, tenant: string, name: string): Promise<Versioned<ScheduleRecord> | undefined> {
  if (!NAME.test(tenant) || !NAME.test(name) || tenant.length > 63 || name.length > 63) return undefined;
  return store.get<ScheduleRecord>(store.keys.schedule(tenant, name));
}

/** Lists schedules in tenant, then name order; one tenant's when `tenant` is set; at most `limit` (default 100). */
export async function listSchedules(store: EtcdStore, f: { tenant?: string; limit?: number } = {}): Promise<ScheduleRecord[]> {
  const prefix = f.tenant ? store.keys.schedulesOf(f.tenant) : store.keys.schedules();
  const limit = f.limit ?? 100;
  const out: ScheduleRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.list<ScheduleRecord>(prefix, { limit: Math.min(500, limit), startAfter: after });
    for (const kv of page.items) {
      out.push(kv.value);
      if (out.length === limit) return out;
    }
    if (!page.more || page.items.length === 0) return out;
    after = page.items[page.items.length - 1].key;
  }
}

/**
 * Changes a schedule by compare-and-swap: `change` returns the next record, or undefined to
 * leave it (then the current one is returned). Undefined when there is no such schedule.
 * @throws CasConflictError when it changed on each of `MAX_CAS_ATTEMPTS` tries
 */
export async function updateSchedule(
  store: EtcdStore,
  tenant: string,
  name: string,
  change: (s: ScheduleRecord) => ScheduleRecord | undefined,
): Promise<ScheduleRecord | undefined> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await getSchedule(store, tenant, name);
    if (!cur) return undefined;
    const next = change(cur.value);
    if (!next) return cur.value;
    if ((await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ put: cur.key, value: next }])).succeeded) return next;
  }
  throw new CasConflictError(`schedule ${name} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, name);
}

/**
 * Deletes a schedule by compare-and-swap on what was read (its instances stay: they are jobs
 * and workflows like any other). Returns the deleted record, or undefined when there was none.
 */
export async function deleteSchedule(store: EtcdStore, tenant: string, name: string): Promise<ScheduleRecord | undefined> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await getSchedule(store, tenant, name);
    if (!cur) return undefined;
    if ((await store.txn([{ key: cur.key, modRevision: cur.modRevision }], [{ delete: cur.key }])).succeeded) return cur.value;
  }
  throw new CasConflictError(`schedule ${name} changed on each of ${MAX_CAS_ATTEMPTS} compare-and-swap attempts`, name);
}

/** An instance a tick starts: a job, or a workflow. */
export type ScheduleInstanceRecord = { kind: 'job'; record: JobRecord } | { kind: 'workflow'; record: WorkflowRecord };

/** What a fenced schedule write did. */
export type FencedScheduleWrite =
  /** Applied, at this revision. */
  | { outcome: 'written'; revision: string }
  /** The schedule changed meanwhile (or the instance exists): nothing applied; re-read and decide again. */
  | { outcome: 'conflict' }
  /** The fence is gone: this process is no longer the leader; nothing applied. */
  | { outcome: 'fenced' };

/**
 * Records a tick and starts its instance in ONE fenced transaction: it compares the leader's
 * fence, the schedule's mod revision (what the decision read) and that the instance is absent,
 * then puts the instance and the schedule's next record (with `lastScheduleTime` the tick). A
 * crash before the commit leaves neither; after it, both — a successor decides from the
 * recorded tick and never fires it again. A resend of a committed transaction by the client
 * fails its compares and reads as a conflict: the re-read shows the tick recorded.
 */
export async function fireScheduleTick(
  store: EtcdStore,
  fence: Compare,
  cur: Versioned<ScheduleRecord>,
  next: ScheduleRecord,
  instance: ScheduleInstanceRecord,
): Promise<FencedScheduleWrite> {
  const instKey = instance.kind === 'job' ? store.keys.job(instance.record.id) : store.keys.workflow(instance.record.id);
  const ops: Op[] = [
    { put: instKey, value: instance.record },
    { put: cur.key, value: next },
  ];
  return fencedWrite(
    store,
    fence,
    [
      { key: cur.key, modRevision: cur.modRevision },
      { key: instKey, absent: true },
    ],
    ops,
  );
}

/** The controller's compare-and-swap of a schedule (missed ticks, finished instances), fenced by its leadership. */
export async function putScheduleFenced(store: EtcdStore, fence: Compare, cur: Versioned<ScheduleRecord>, next: ScheduleRecord): Promise<FencedScheduleWrite> {
  return fencedWrite(store, fence, [{ key: cur.key, modRevision: cur.modRevision }], [{ put: cur.key, value: next }]);
}

async function fencedWrite(store: EtcdStore, fence: Compare, compares: Compare[], ops: Op[]): Promise<FencedScheduleWrite> {
  const res = await store.txn([fence, ...compares], ops);
  if (res.succeeded) return { outcome: 'written', revision: res.revision };
  return (await store.txn([fence], [])).succeeded ? { outcome: 'conflict' } : { outcome: 'fenced' };
}
