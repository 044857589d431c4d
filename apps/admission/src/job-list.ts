/**
 * One job list over two stores: live jobs from etcd and archived jobs from history, each read in
 * the list's order, merged into one page and paged by the position of the last job given. A job
 * in both (finished, archived, not yet removed from etcd) is listed once, as etcd has it; a job
 * archived between two pages keeps its place in the order, so it is neither repeated nor missed.
 * Pure.
 */
import {
  ApiError,
  ErrorCode,
  JOB_SORTS,
  type JobRecord,
  type JobSort,
  type LabelRequirement,
  matchesLabels,
  TERMINAL_PHASES,
  WORKFLOW_LABEL,
} from '@batchapi/api';

/** Where a page ended: the last job's id, and its end time when the list is by end. */
export interface JobListPosition {
  id: string;
  /** Epoch milliseconds; set for the `finished` orders. */
  finishedAt?: number;
}

/** One source's answer for the page: its jobs after the position in the list's order, and whether it may have more. */
export interface SourcePage {
  jobs: readonly JobRecord[];
  /** The source stopped at the limit: jobs after its last one may exist. */
  more: boolean;
}

/** What a job must be to be listed, beyond tenant, queue and state (which both stores index). All given must hold. */
export interface JobListCriteria {
  selector?: readonly LabelRequirement[];
  namePrefix?: string;
  workflowId?: string;
  /** Epoch milliseconds: submitted at or after. */
  submittedFrom?: number;
  /** Epoch milliseconds: submitted before. */
  submittedBefore?: number;
  /** Epoch milliseconds: finished at or after (unfinished jobs fail it). */
  finishedFrom?: number;
  /** Epoch milliseconds: finished before (unfinished jobs fail it). */
  finishedBefore?: number;
  /** Only jobs that have finished (the `finished` orders). */
  finishedOnly?: boolean;
}

const byBytes = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The list's order as a comparison: `submitted` by id, `finished` by (finishedAt, id); `-` reverses. */
export function jobOrder(sort: JobSort): (a: JobRecord, b: JobRecord) => number {
  const sign = sort.startsWith('-') ? -1 : 1;
  if (sort.endsWith('submitted')) return (a, b) => sign * byBytes(a.id, b.id);
  return (a, b) => sign * ((a.finishedAt ?? 0) - (b.finishedAt ?? 0) || byBytes(a.id, b.id));
}

/** Whether `job` comes after `position` in the list's order (the next page starts after it). */
export function isAfter(job: JobRecord, position: JobListPosition, sort: JobSort): boolean {
  const at = { id: position.id, finishedAt: position.finishedAt } as JobRecord;
  return jobOrder(sort)(job, at) > 0;
}

/** The test a live job passes to be listed (history applies the same criteria in SQL). */
export function jobMatcher(c: JobListCriteria): (job: JobRecord) => boolean {
  return (job) => {
    const finishedAt = job.finishedAt;
    if ((c.finishedOnly || c.finishedFrom !== undefined || c.finishedBefore !== undefined) && (finishedAt === undefined || !TERMINAL_PHASES.has(job.phase))) {
      return false;
    }
    if (c.finishedFrom !== undefined && finishedAt! < c.finishedFrom) return false;
    if (c.finishedBefore !== undefined && finishedAt! >= c.finishedBefore) return false;
    if (c.submittedFrom !== undefined && job.createdAt < c.submittedFrom) return false;
    if (c.submittedBefore !== undefined && job.createdAt >= c.submittedBefore) return false;
    if (c.namePrefix !== undefined && !job.spec.name.startsWith(c.namePrefix)) return false;
    if (c.workflowId !== undefined && job.spec.labels?.[WORKFLOW_LABEL] !== c.workflowId) return false;
    return !c.selector || matchesLabels(job.spec.labels, c.selector);
  };
}

/**
 * The first `limit` jobs of the union in the list's order, and the position to continue after
 * when more may follow: when either source may have more, or the union had more than `limit`.
 *   page = sort_by_order(live ∪ archived \\ (archived ∩ live by id))[0, limit)
 */
export function mergeJobPages(
  live: SourcePage,
  archived: SourcePage,
  limit: number,
  sort: JobSort = 'submitted',
): { jobs: JobRecord[]; next?: JobListPosition } {
  const byId = new Map<string, JobRecord>();
  for (const j of archived.jobs) byId.set(j.id, j);
  for (const j of live.jobs) byId.set(j.id, j);
  const all = [...byId.values()].sort(jobOrder(sort));
  const jobs = all.slice(0, limit);
  // A source that stopped at the limit may have jobs between our last and its next: continue after the last given.
  const more = all.length > limit || live.more || archived.more;
  if (!more || jobs.length === 0) return { jobs };
  const last = jobs[jobs.length - 1];
  return { jobs, next: sort.endsWith('finished') ? { id: last.id, finishedAt: last.finishedAt } : { id: last.id } };
}

/** The page token of a position: opaque to callers, bound to the order it was made for. */
export function encodeJobPageToken(sort: JobSort, position: JobListPosition): string {
  return Buffer.from(JSON.stringify([sort, position.id, ...(position.finishedAt !== undefined ? [position.finishedAt] : [])])).toString('base64url');
}

/**
 * The position a page token holds.
 * @throws ApiError invalid_argument (field `pageToken`) for a token this API did not give, or one given for another `sort`
 */
export function decodeJobPageToken(token: string, sort: JobSort): JobListPosition {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  const finished = sort.endsWith('finished');
  const ok =
    Array.isArray(v) &&
    v.length === (finished ? 3 : 2) &&
    (JOB_SORTS as readonly unknown[]).includes(v[0]) &&
    typeof v[1] === 'string' &&
    /^[A-Za-z0-9-]{1,64}$/.test(v[1]) &&
    (!finished || Number.isSafeInteger(v[2]));
  if (!ok) throw new ApiError(ErrorCode.InvalidArgument, 'pageToken is not one this API gave', { field: 'pageToken' });
  const [madeFor, id, finishedAt] = v as [JobSort, string, number?];
  if (madeFor !== sort) throw new ApiError(ErrorCode.InvalidArgument, `pageToken was given for sort=${madeFor}, not sort=${sort}`, { field: 'pageToken' });
  return finished ? { id, finishedAt } : { id };
}
