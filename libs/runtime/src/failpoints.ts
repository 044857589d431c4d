/**
 * Failpoints: named places in the services where a fault test stops a process at an exact
 * interleaving instead of polling for a window a few milliseconds wide (etcd's gofail, for
 * this codebase). Off unless `BATCH_FAILPOINTS_FILE` names a file; the file is read at every
 * hit, so a test arms and disarms a failpoint of a running process by writing or removing it.
 * Each place is hit at most once per batch of work, never per request, so the read costs
 * nothing that matters; an absent or unreadable file arms nothing.
 *
 * The file holds one `name=action` per line (`#` starts a comment). Actions:
 * - `sigkill`: the process kills itself with SIGKILL right there — a crash at that line, with
 *   no handler, no flush and no resignation, as `kill -9` from outside at that instant.
 */
import { readFileSync } from 'node:fs';

/** Every failpoint, by name. */
export const FAILPOINTS = {
  /** The archiver wrote a batch to history and has not removed any of it from etcd yet. */
  ArchiverAfterHistoryWrite: 'archiver.after-history-write',
} as const;
export type FailpointName = (typeof FAILPOINTS)[keyof typeof FAILPOINTS];

/** What an armed failpoint does. */
export type FailpointAction = 'sigkill';

/** The variable naming the failpoints file of a process. */
export const FAILPOINTS_FILE_ENV = 'BATCH_FAILPOINTS_FILE';

/** The armed failpoints of a failpoints file's text; unknown names and actions are ignored. Pure. */
export function parseFailpoints(text: string): Map<FailpointName, FailpointAction> {
  const known = new Set<string>(Object.values(FAILPOINTS));
  const out = new Map<FailpointName, FailpointAction>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^([\w.-]+)\s*=\s*(\w+)$/.exec(line);
    if (m && known.has(m[1]) && m[2] === 'sigkill') out.set(m[1] as FailpointName, m[2]);
  }
  return out;
}

/**
 * Passes the failpoint `name`: does its action when the failpoints file arms it, else nothing.
 * @param file the failpoints file. @default `BATCH_FAILPOINTS_FILE`, none when unset
 */
export function failpoint(name: FailpointName, file = process.env[FAILPOINTS_FILE_ENV]): void {
  if (!file) return;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  if (parseFailpoints(text).get(name) === 'sigkill') process.kill(process.pid, 'SIGKILL');
}
