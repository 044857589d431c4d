/**
 * The self-fence runs on CLOCK_MONOTONIC: a step of a service's wall clock (the nemesis's
 * `clock-offset.js` preload, re-read on SIGUSR2) by ±60 s — far past the lease's 2 s TTL —
 * neither fences the service nor stretches its fence, while a real stall past the TTL (SIGSTOP)
 * still fences it (the process exits 75). A real executor process (a simulated fleet of one node).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type NodeRecord } from '@batchapi/api';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';

const ROOT = resolve(__dirname, '../../..');
let etcd: LocalEtcd;
let store: EtcdStore;
let dir: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: etcd.endpoints });
  dir = mkdtempSync(join(tmpdir(), 'clock-step-'));
});
afterAll(async () => {
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  await store?.close();
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('is not fenced by a wall-clock step of ±60 s, and is fenced by a real stall past its TTL', async () => {
  const clockFile = join(dir, 'offset');
  writeFileSync(clockFile, '0');
  child = spawn(process.execPath, [join(ROOT, 'apps/executor/dist/main.js')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      NODE_OPTIONS: `--require ${join(ROOT, 'tools/e2e/faults/clock-offset.js')}`,
      BATCH_FAKE_CLOCK_FILE: clockFile,
      BATCH_ETCD_ENDPOINTS: etcd.endpoints.join(','),
      BATCH_LEASE_TTL: '2',
      BATCH_LOG_LEVEL: 'error',
      BATCH_SIMULATE_NODES: '1',
      BATCH_NODE_NAME: 'stepped',
      BATCH_SERVICE_TOKEN: 'clock-step-test-service-token-0123456789abcdef',
    },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += String(d);
  });
  const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
  const nodeKey = store.keys.node('stepped-00000');
  for (let i = 0; i < 200 && !(await store.get<NodeRecord>(nodeKey)); i++) await sleep(100);
  const registered = await store.get<NodeRecord>(nodeKey);
  expect(registered).toBeDefined();

  const step = async (offsetMs: number) => {
    writeFileSync(clockFile, String(offsetMs));
    child!.kill('SIGUSR2');
    // Three TTLs on the stepped clock.
    await sleep(6000);
    expect({ exitCode: child!.exitCode, stderr }).toEqual({ exitCode: null, stderr: '' });
    // Still the same registration, on the same lease.
    expect((await store.get<NodeRecord>(nodeKey))?.createRevision).toBe(registered!.createRevision);
  };
  await step(60_000);
  await step(-60_000);

  // A real stall past the TTL: the process fences itself as soon as it runs again.
  child.kill('SIGSTOP');
  await sleep(4000);
  child.kill('SIGCONT');
  const code = await Promise.race([exited, sleep(10_000).then(() => 'still running')]);
  expect(code).toBe(75);
}, 60_000);
