/**
 * One job list over two stores: live jobs from etcd and archived jobs from history, both in job
 * id order (bytes), merged into one page by id and paged by the last id given. A job in both
 * (finished, archived, not yet removed from etcd) is listed once, as etcd has it; a job archived
 * between two pages keeps its place in the order, so it is neither repeated nor missed. Pure.
 */
import type { JobRecord } from '@batchapi/api';

/** One source's answer for the page: its jobs after the cursor in id order, and whether it may have more. */
export interface SourcePage {
  jobs: readonly JobRecord[];
  /** The source stopped at the limit: jobs after its last one may exist. */
  more: boolean;
}

/**
 * The first `limit` jobs of the union by id, and the id to continue after when more may follow:
 * when either source may have more, or the union had more than `limit`.
 *   page = sort_by_id(live ∪ archived \\ (archived ∩ live by id))[0, limit)
 */
export function mergeJobPages(live: SourcePage, archived: SourcePage, limit: number): { jobs: JobRecord[]; nextAfter?: string } {
  const byId = new Map<string, JobRecord>();
  for (const j of archived.jobs) byId.set(j.id, j);
  for (const j of live.jobs) byId.set(j.id, j);
  const all = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const jobs = all.slice(0, limit);
  // A source that stopped at the limit may have jobs between our last and its next: continue after the last given.
  const more = all.length > limit || live.more || archived.more;
  return more && jobs.length > 0 ? { jobs, nextAfter: jobs[jobs.length - 1].id } : { jobs };
}
