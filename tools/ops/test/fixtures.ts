/** What the suites of tools/ops share: the repository's root and its files, and which of the tools they drive are installed. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The repository's root. */
export const ROOT = join(__dirname, '../../..');

/** The text of `path`, relative to the repository's root. */
export const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** True when `bin` is on PATH and `bin args` (e.g. `--version`) exits 0. */
export function installed(bin: string, args: string[]): boolean {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

/** True when both `etcd` and `etcdctl` are installed. */
export const etcdInstalled = (): boolean => installed('etcd', ['--version']) && installed('etcdctl', ['version']);
