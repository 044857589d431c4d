/**
 * `batch dev` when things go wrong, with real processes: a cluster whose `batch dev` was killed
 * leaves processes that the next start on the same data stops; a service that dies stops the
 * whole cluster with exit 1 and its name.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchClient } from '@batchapi/sdk';
import { alive, DevProcess, pidsMentioning, waitGone } from './dev-process';
import { postgresDataDir } from '../src/local-cluster';

let dir: string;
let env: NodeJS.ProcessEnv;
const running: DevProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cli-dev-fail-'));
  env = { XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache') };
});
afterEach(() => {
  for (const d of running.splice(0)) d.killAll();
  rmSync(dir, { recursive: true, force: true });
});

it('stops the processes a killed batch dev left behind before it starts again on the same data, and keeps the jobs', async () => {
  const dataDir = join(dir, 'data');
  const first = new DevProcess(['--data-dir', dataDir], env);
  running.push(first);
  const one = await first.up();
  const job = await new BatchClient({ url: one.api, token: one.token }).submitJob({ command: ['true'], resources: { cpu: '100m' } });
  const leftovers = first.clusterPids(dataDir);
  process.kill(first.pid, 'SIGKILL'); // only batch dev itself: etcd and the services live on
  await first.exited;
  expect(leftovers.filter(alive).length).toBeGreaterThanOrEqual(5);

  const second = new DevProcess(['--data-dir', dataDir], env);
  running.push(second);
  const two = await second.up();
  expect(second.stderr).toContain(`left running by an earlier local cluster (pid ${first.pid}) that did not stop cleanly`);
  expect(await waitGone(leftovers)).toEqual([]);
  // The data survived: the job submitted to the first cluster is there (new tokens, same tenant).
  const client = new BatchClient({ url: two.api, token: two.token });
  expect((await client.waitForJob(job.id, { intervalMs: 100, timeoutMs: 20_000 })).phase).toBe('Succeeded');

  const pids = second.clusterPids(dataDir);
  process.kill(second.pid, 'SIGTERM');
  expect(await second.exited).toBe(0);
  expect(await waitGone(pids)).toEqual([]);
}, 60_000);

it('when a service dies, says which, stops everything else and exits 1', async () => {
  const dataDir = join(dir, 'data');
  const dev = new DevProcess(['--data-dir', dataDir], env);
  running.push(dev);
  await dev.up();
  const pids = dev.clusterPids(dataDir);
  const lock = JSON.parse(readFileSync(join(dataDir, 'cluster.lock.json'), 'utf8')) as { processes: Array<{ name: string; pid: number }> };
  const scheduler = lock.processes.find((p) => p.name === 'scheduler')!;
  expect(pids).toContain(scheduler.pid);
  process.kill(scheduler.pid, 'SIGKILL');
  expect(await dev.exited).toBe(1);
  expect(dev.stderr).toContain('error: scheduler exited (SIGKILL) while the cluster was running; the cluster was stopped');
  expect(await waitGone(pids)).toEqual([]);
}, 60_000);

it('a Ctrl-C while the cluster starts stops what was started and exits 0', async () => {
  const dataDir = join(dir, 'data');
  const dev = new DevProcess(['--data-dir', dataDir], env);
  running.push(dev);
  const deadline = Date.now() + 30_000;
  while (!dev.stderr.includes('• starting scheduler') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const pids = dev.clusterPids(dataDir); // etcd, quota, maybe the scheduler
  expect(pids.length).toBeGreaterThanOrEqual(2);
  process.kill(-dev.pid, 'SIGINT');
  expect(await dev.exited).toBe(0);
  expect(dev.stderr).toContain('• stopped before the cluster was ready');
  expect(dev.stdout).not.toContain('local cluster is up');
  expect(await waitGone([...pids, ...dev.clusterPids(dataDir)])).toEqual([]);
}, 60_000);

it('a demo that runs out of time says so, stops the cluster and exits 1', async () => {
  // The only node is a simulated one whose tasks "run" 60 s (BATCH_SIM_TASK_MS), so the deadline is what ends
  // the demo. (On a real node the three steps — the first failing once, retried at once — can end within 1 s.)
  const dev = new DevProcess(['--demo', '--timeout', '1', '--executors', '0', '--simulated-nodes', '1'], { ...env, BATCH_SIM_TASK_MS: '60000' });
  running.push(dev);
  expect(await dev.exited).toBe(1);
  expect(dev.stderr).toMatch(/error: the demo did not finish within 1 s: workflow \S+ is (Pending|Running) \(.*prepare.*→.*count.*→.*reduce/);
  expect(dev.stderr).toContain('• stopped');
  expect(pidsMentioning(join(dir, 'cache'))).toEqual([]);
}, 60_000);

it('a demo with history runs PostgreSQL beside etcd, says where, and leaves neither a server nor its data behind', async () => {
  const dev = new DevProcess(['--demo', '--history'], env);
  running.push(dev);
  expect(await dev.exited).toBe(0);
  expect(dev.stderr).toContain('• starting PostgreSQL (history)');
  const url = /history: {8}(postgres:\/\/\S+)/.exec(dev.stdout)?.[1];
  expect(url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/batch$/);
  // the server is gone, and so is a root-run cluster's data under /tmp
  const dataDir = /data: {11}(\S+)/.exec(dev.stdout)![1];
  expect(existsSync(postgresDataDir(dataDir))).toBe(false);
  expect(pidsMentioning(postgresDataDir(dataDir))).toEqual([]);
}, 90_000);
