/**
 * The nemesis checker: pure functions that turn what a run collected — the load's submits and
 * answers, what etcd holds at the end, the task run log and the samples taken during the run —
 * into the table every nemesis run prints. No I/O here: `nemesis.ts` collects, this judges,
 * and `tools/e2e/test/nemesis-checker.spec.ts` pins each rule with a table of cases.
 */
import type { NodeAllocation, Queue, ResourceVector } from '@batchapi/api';

/** The kinds of work the nemesis load submits. */
export type WorkKind = 'single' | 'process' | 'array' | 'gang' | 'workflow';

/** One idempotency key of the load: every answer any attempt or deliberate resubmit of it got. */
export interface SubmitRecord {
  kind: WorkKind;
  key: string;
  /** Ids answered 200/201 to this key, in order (a retried or resubmitted key must get one id). */
  ids: string[];
  /** Tasks of the job (of every step for a workflow). */
  tasks: number;
  /** A cancel was sent for it (its answer may have been lost): it may end Cancelled or Succeeded. */
  cancelled?: boolean;
  /** A final refusal (4xx other than 429) or giving up, with the status; not accepted. */
  refused?: string;
  /** A resubmit of the accepted key was refused (it must answer the job): the answer. */
  resubmitRefused?: string;
}

/** What etcd holds for one job or workflow at the end of the run. */
export interface StoredWork {
  phase: string;
  reason?: string;
  /** Its `nkey` label: the load's idempotency key. */
  key?: string;
}

/** What etcd holds at the end, reduced to what the checker needs. */
export interface EtcdView {
  /** Jobs and workflows by id. */
  work: Map<string, StoredWork>;
  /** Tasks that Succeeded in more than one group (attempt): `job/index` → group keys. */
  succeededTwice: Array<{ job: string; index: number; groups: string[] }>;
}

/** Samples taken during the run (every 500 ms): what was broken at that instant, if anything. */
export interface Samples {
  /** Each capacity sample: the nodes over capacity then (empty: none). */
  capacity: string[][];
  /** Each quota sample: queues or cohorts over their limit then. */
  quota: string[][];
  /** Each leader sample: the running scheduler replicas that reported `batch_scheduler_is_leader 1`. */
  leaders: string[][];
}

/** A run's facts beside the checks. */
export interface RunFacts {
  seed: number;
  minutes: number;
  /** Submits (POST /v1/jobs and /v1/workflows, resubmits included) per second the load achieved. */
  submitRate: number;
  faults: number;
}

/** The row every run prints. Every count but `accepted`, `completed` and the facts must be 0. */
export interface NemesisRow extends RunFacts {
  accepted: number;
  /** Accepted and ended as they should: Succeeded, or Cancelled/Succeeded after a cancel. */
  completed: number;
  /** Accepted but missing from etcd, or ended in a phase they must not (Cancelled without a cancel, Rejected). */
  lost: number;
  /** Should have succeeded but Failed. */
  failed: number;
  /** Two overlapping runs of one task in the run log, plus tasks Succeeded in two groups in etcd. */
  dupRuns: number;
  /** Not finished when checked (60 s after the load stopped). */
  stuck: number;
  /** Samples with a node whose allocation was over its capacity. */
  overCapacity: number;
  /** Samples with a queue over nominal + borrowing limit (or a cohort over its nominal sum). */
  overQuota: number;
  /** Samples where two running scheduler replicas both reported being the leader. */
  doubleLeaders: number;
  /** Keys answered with two ids, or with two jobs in etcd. */
  keyMismatches: number;
  /**
   * Keys never accepted: refused (a 4xx other than 429: the load sends only valid work) or given
   * up after 60 s of retries on both replicas (the API was unavailable longer than any fault).
   */
  notAccepted: number;
}

/** The verdict: the row, per-kind counts and the evidence of every non-zero count. */
export interface NemesisReport {
  row: NemesisRow;
  /** `kind` → [accepted, completed]. */
  byKind: Record<string, [number, number]>;
  /** One line per problem, with the job id (at most `limit` per column). */
  problems: string[];
  /** Ids of the jobs and workflows whose problem is printed (at most `limit` per column), to describe in detail. */
  suspects: string[];
}

const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled', 'Rejected']);

/** One task run in the run log: start to its end line (or its last heartbeat plus slack, if killed). */
interface Run {
  attempt: string;
  start: number;
  end: number;
}

/**
 * Overlapping runs of one task in the run log. Lines are `s|h|e <job> <index> <attempt> <epoch
 * seconds>` (start, a heartbeat every 50 or 100 ms, end); a run killed before its end line ends
 * at its last heartbeat plus `slackMs`. Returns one entry per overlapping pair.
 */
export function overlappingRuns(log: string, slackMs = 150): Array<{ job: string; index: string; attempts: [string, string] }> {
  const runs = new Map<string, Run[]>();
  for (const line of log.split('\n')) {
    const [kind, job, index, attempt, at] = line.split(' ');
    if (!job || !at) continue;
    const t = Number(at) * 1000;
    if (!Number.isFinite(t)) continue;
    const key = `${job} ${index}`;
    const list = runs.get(key) ?? [];
    runs.set(key, list);
    const run = list.filter((r) => r.attempt === attempt).pop();
    if (kind === 's') list.push({ attempt, start: t, end: t + slackMs });
    else if (run && kind === 'h') run.end = Math.max(run.end, t + slackMs);
    else if (run && kind === 'e') run.end = t;
  }
  const out: Array<{ job: string; index: string; attempts: [string, string] }> = [];
  for (const [key, list] of runs) {
    const [job, index] = key.split(' ');
    for (let i = 0; i < list.length; i++)
      for (let j = i + 1; j < list.length; j++) {
        if (list[i].start < list[j].end && list[j].start < list[i].end) out.push({ job, index, attempts: [list[i].attempt, list[j].attempt] });
      }
  }
  return out;
}

/** Nodes whose allocation is over their capacity in some resource: `node cpu 33000 > 32000`. */
export function capacityViolations(nodes: Map<string, ResourceVector>, allocs: Map<string, NodeAllocation>): string[] {
  const out: string[] = [];
  for (const [node, a] of allocs) {
    const cap = nodes.get(node);
    if (!cap) continue; // its executor is gone: nothing runs there any more
    for (const [r, used] of Object.entries(a.used)) if (used > (cap[r] ?? 0)) out.push(`${node} ${r} ${used} > ${cap[r] ?? 0}`);
  }
  return out;
}

/**
 * Queues whose usage (the sum of every node allocation's share for them, as the scheduler
 * counts it) is over nominal + borrowing limit — nominal alone outside a cohort — and cohorts
 * over the sum of their queues' nominal. A resource without a nominal is not limited.
 */
export function quotaViolations(queues: Queue[], allocs: Iterable<NodeAllocation>): string[] {
  return quotaViolationsOf(queues, queueUsage(allocs));
}

/** Each queue's usage: the sum of every node allocation's share for it (as the scheduler counts it). */
export function queueUsage(allocs: Iterable<NodeAllocation>): Map<string, ResourceVector> {
  const used = new Map<string, ResourceVector>();
  for (const a of allocs)
    for (const [q, v] of Object.entries(a.queues ?? {})) {
      const u = used.get(q) ?? {};
      for (const [r, n] of Object.entries(v)) u[r] = (u[r] ?? 0) + n;
      used.set(q, u);
    }
  return used;
}

/** `quotaViolations` over usage already summed by `queueUsage`. */
export function quotaViolationsOf(queues: Queue[], used: Map<string, ResourceVector>): string[] {
  const out: string[] = [];
  const cohorts = new Map<string, { nominal: ResourceVector; used: ResourceVector }>();
  for (const q of queues) {
    const u = used.get(q.name) ?? {};
    for (const [r, nominal] of Object.entries(q.nominal)) {
      const limit = nominal + (q.cohort ? (q.borrowingLimit?.[r] ?? Number.POSITIVE_INFINITY) : 0);
      if ((u[r] ?? 0) > limit) out.push(`queue ${q.name} ${r} ${u[r]} > ${limit}`);
    }
    if (!q.cohort) continue;
    const c = cohorts.get(q.cohort) ?? { nominal: {}, used: {} };
    cohorts.set(q.cohort, c);
    for (const [r, n] of Object.entries(q.nominal)) c.nominal[r] = (c.nominal[r] ?? 0) + n;
    for (const [r, n] of Object.entries(u)) c.used[r] = (c.used[r] ?? 0) + n;
  }
  for (const [name, c] of cohorts)
    for (const [r, nominal] of Object.entries(c.nominal)) if ((c.used[r] ?? 0) > nominal) out.push(`cohort ${name} ${r} ${c.used[r]} > ${nominal}`);
  return out;
}

/** The verdict of a run. `limit` caps the evidence lines of each column. */
export function summarize(facts: RunFacts, submits: Iterable<SubmitRecord>, etcd: EtcdView, runLog: string, samples: Samples, limit = 5): NemesisReport {
  const row: NemesisRow = {
    ...facts,
    accepted: 0,
    completed: 0,
    lost: 0,
    failed: 0,
    dupRuns: 0,
    stuck: 0,
    overCapacity: 0,
    overQuota: 0,
    doubleLeaders: 0,
    keyMismatches: 0,
    notAccepted: 0,
  };
  const byKind: Record<string, [number, number]> = {};
  const problems: Record<string, string[]> = {};
  const suspects: string[] = [];
  // the first `limit` problems of each column are printed, and their jobs described
  const note = (column: string, line: string, suspect?: string) => {
    const l = (problems[column] ??= []);
    if (l.length >= limit) return;
    l.push(`${column}: ${line}`);
    if (suspect) suspects.push(suspect);
  };
  const accepted = new Set<string>();
  const mismatched = new Set<string>();
  for (const s of submits) {
    if (!s.ids.length) {
      row.notAccepted++;
      note('not accepted', `${s.kind} key ${s.key}: ${s.refused ?? 'no answer yet'}`);
      continue;
    }
    const id = s.ids[0];
    accepted.add(id);
    row.accepted++;
    const k = (byKind[s.kind] ??= [0, 0]);
    k[0]++;
    if (new Set(s.ids).size > 1) {
      mismatched.add(s.key);
      note('key mismatch', `key ${s.key} answered ${[...new Set(s.ids)].join(', ')}`);
    } else if (s.resubmitRefused) {
      mismatched.add(s.key);
      note('key mismatch', `key ${s.key} of ${id} was refused on a resubmit: ${s.resubmitRefused}`);
    }
    const w = etcd.work.get(id);
    const ok = s.cancelled ? ['Succeeded', 'Cancelled'] : ['Succeeded'];
    if (!w) {
      row.lost++;
      note('lost', `${s.kind} ${id} (key ${s.key}) is not in etcd`, id);
    } else if (!TERMINAL.has(w.phase)) {
      row.stuck++;
      note('stuck', `${s.kind} ${id} is ${w.phase}`, id);
    } else if (ok.includes(w.phase)) {
      row.completed++;
      k[1]++;
    } else if (w.phase === 'Failed') {
      row.failed++;
      note('failed', `${s.kind} ${id}${s.cancelled ? ' (cancelled)' : ''} Failed${w.reason ? `: ${w.reason}` : ''}`, id);
    } else {
      row.lost++;
      note('lost', `${s.kind} ${id} ended ${w.phase}${w.reason ? ` (${w.reason})` : ''} without a cancel`, id);
    }
  }
  // A key that made two jobs or workflows in etcd (whether or not the load saw both ids).
  const byKey = new Map<string, string[]>();
  for (const [id, w] of etcd.work) if (w.key) byKey.set(w.key, [...(byKey.get(w.key) ?? []), id]);
  for (const [key, ids] of byKey) {
    if (ids.length < 2 || mismatched.has(key)) continue;
    mismatched.add(key);
    note('key mismatch', `key ${key} has ${ids.length} records in etcd: ${ids.join(', ')}`);
  }
  row.keyMismatches = mismatched.size;
  for (const d of overlappingRuns(runLog).filter((o) => accepted.has(o.job))) {
    row.dupRuns++;
    note('dup runs', `job ${d.job} task ${d.index}: runs of attempts ${d.attempts.join(' and ')} overlapped in the run log`, d.job);
  }
  for (const d of etcd.succeededTwice) {
    row.dupRuns++;
    note('dup runs', `job ${d.job} task ${d.index} Succeeded in ${d.groups.length} groups: ${d.groups.join(', ')}`, d.job);
  }
  const instants = (column: string, list: string[][]) => {
    let n = 0;
    list.forEach((s, i) => {
      if (s.length) {
        n++;
        note(column, `sample ${i}: ${s.join('; ')}`);
      }
    });
    return n;
  };
  row.overCapacity = instants('over capacity', samples.capacity);
  row.overQuota = instants('over quota', samples.quota);
  row.doubleLeaders = instants(
    'double leaders',
    samples.leaders.map((l) => (l.length > 1 ? l : [])),
  );
  return { row, byKind, problems: Object.values(problems).flat(), suspects: [...new Set(suspects)] };
}

/** Column heads of the printed table, in order, with the row field each shows. */
const COLUMNS: Array<[string, (r: NemesisRow) => string]> = [
  ['seed', (r) => String(r.seed)],
  ['min', (r) => String(r.minutes)],
  ['submits/s', (r) => r.submitRate.toFixed(0)],
  ['faults', (r) => String(r.faults)],
  ['accepted', (r) => String(r.accepted)],
  ['completed', (r) => String(r.completed)],
  ['lost', (r) => String(r.lost)],
  ['failed', (r) => String(r.failed)],
  ['dup runs', (r) => String(r.dupRuns)],
  ['stuck', (r) => String(r.stuck)],
  ['over cap', (r) => String(r.overCapacity)],
  ['over quota', (r) => String(r.overQuota)],
  ['2 leaders', (r) => String(r.doubleLeaders)],
  ['key mismatch', (r) => String(r.keyMismatches)],
  ['not accepted', (r) => String(r.notAccepted)],
];

/** The markdown table of one or more runs. */
export function nemesisTable(rows: NemesisRow[]): string {
  const body = rows.map((r) => COLUMNS.map(([, f]) => f(r)));
  const widths = COLUMNS.map(([h], i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(COLUMNS.map(([h]) => h)), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/** The counts a passing run has at 0. */
export function failures(r: NemesisRow): string[] {
  const must0: Array<keyof NemesisRow> = ['lost', 'failed', 'dupRuns', 'stuck', 'overCapacity', 'overQuota', 'doubleLeaders', 'keyMismatches', 'notAccepted'];
  return must0.filter((k) => r[k] !== 0).map((k) => `${k} ${r[k]}`);
}
