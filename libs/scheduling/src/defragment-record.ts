/**
 * The stored form of the leader's defragmentation nominations (`DefragmentRecord`, at
 * `defragmenting`): built from the leader's maps within `DEFRAGMENT_RECORD_BOUNDS`, and read back by
 * standby replicas and admission into what their "why pending" needs — the jobs' nominated nodes
 * (with their start, so a used entry drops out as on the leader) and what each job waits for.
 * Pure; a malformed or lapsed record reads as none.
 */
import { DEFRAGMENT_RECORD_BOUNDS, type DefragmentRecord, type DefragmentRecordJob } from '@batchapi/api';
import type { Defragmenting } from './explain';

/** What a record gives "why pending": the snapshot's nominations and `ExplainOptions.defragmenting`. */
export interface StoredDefragmentation {
  nominated: Map<string, string[]>;
  nominatedSince: Map<string, number>;
  defragmenting: Map<string, Defragmenting>;
}

/**
 * The record of the leader's term `term` (its leader key's create revision) at `now` for the jobs it is making room for: each job's
 * nominations and their start as the leader holds them, lapsing at `until`. A job whose nominations
 * or stops exceed the bounds is left out (its standbys' why-pending just lacks the line), and so is
 * every job past the first `DEFRAGMENT_RECORD_BOUNDS.jobs` in id order.
 */
export function defragmentRecordOf(
  defragmenting: ReadonlyMap<string, Defragmenting>,
  nominated: ReadonlyMap<string, readonly string[]>,
  since: ReadonlyMap<string, number>,
  term: string,
  now: number,
  until: number,
): DefragmentRecord {
  const B = DEFRAGMENT_RECORD_BOUNDS;
  const jobs: DefragmentRecordJob[] = [];
  for (const [jobId, d] of [...defragmenting].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const nodes = nominated.get(jobId);
    const at = since.get(jobId);
    if (!nodes?.length || at === undefined || nodes.length > B.nodes || d.stops.length > B.stops || jobs.length >= B.jobs) continue;
    jobs.push({ jobId, nominated: [...nodes], since: at, freed: [...d.nodes], stops: d.stops.map((x) => ({ ...x })) });
  }
  return { term, at: now, until, jobs };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 253;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const names = (v: unknown, most: number): v is string[] => Array.isArray(v) && v.length <= most && v.every(isName);

/**
 * What a stored record (`DefragmentRecord`, unchecked) gives "why pending" at `now`: undefined when
 * there is none, it has lapsed (`until` ≤ `now`), it is not the term of the scheduler leader now in
 * etcd (`leaderTerm`: the create revision of `leaders/scheduler`, undefined when no leader is — a
 * deposed or gone leader's nominations are held by no one), or it is malformed or out of bounds (a
 * record this code did not write is no claim). Each job is kept only when well formed.
 */
export function storedDefragmentation(raw: unknown, now: number, leaderTerm: string | undefined): StoredDefragmentation | undefined {
  const B = DEFRAGMENT_RECORD_BOUNDS;
  if (
    leaderTerm === undefined ||
    !isObject(raw) ||
    raw.term !== leaderTerm ||
    typeof raw.until !== 'number' ||
    !(raw.until > now) ||
    !Array.isArray(raw.jobs) ||
    raw.jobs.length > B.jobs
  )
    return undefined;
  const out: StoredDefragmentation = { nominated: new Map(), nominatedSince: new Map(), defragmenting: new Map() };
  for (const j of raw.jobs) {
    if (!isObject(j) || !isName(j.jobId) || !names(j.nominated, B.nodes) || j.nominated.length === 0 || !names(j.freed, B.nodes)) continue;
    if (typeof j.since !== 'number' || !Number.isFinite(j.since) || !Array.isArray(j.stops) || j.stops.length > B.stops) continue;
    const stops = j.stops.filter(
      (x): x is Defragmenting['stops'][number] => isObject(x) && isName(x.jobId) && isCount(x.groupStart) && isCount(x.attempt) && isCount(x.index),
    );
    if (stops.length !== j.stops.length) continue;
    out.nominated.set(j.jobId, j.nominated);
    out.nominatedSince.set(j.jobId, j.since);
    out.defragmenting.set(j.jobId, {
      nodes: j.freed,
      stops: stops.map((x) => ({ jobId: x.jobId, groupStart: x.groupStart, attempt: x.attempt, index: x.index })),
    });
  }
  return out;
}
