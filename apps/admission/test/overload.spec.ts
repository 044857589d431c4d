/**
 * Submits past a replica's capacity are shed at once — 503 `overloaded` with Retry-After —
 * rather than queued: past its most submits in flight (etcd paused, so two hang; the submit
 * throttle's cap) and while its event loop is behind; reads are never shed; a replica back under its capacity takes submits again.
 */
import { createHash } from 'node:crypto';
import type { RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';
import { type OverloadLimits, shedReason, SubmitLoad } from '../src/overload';

describe('SubmitLoad', () => {
  it('sees a stall at once — a request right after the loop was blocked, before any tick ran — and for a second after', async () => {
    const load = new SubmitLoad({ maxLoopDelayMs: 200, maxCommitLatencyMs: 0 });
    try {
      await new Promise((r) => setTimeout(r, 100)); // a few ticks at rest
      // 300 ms blocked, then asked at once: the next tick is overdue by about 300 − 20 ms
      const end = performance.now() + 300;
      while (performance.now() < end) {
        /* busy */
      }
      expect(load.loopDelayMs).toBeGreaterThan(200);
      expect(() => load.enter()).toThrow(/over its capacity for submits/);
      // after ticks ran, the stall is still within the last second
      await new Promise((r) => setTimeout(r, 100));
      expect(load.loopDelayMs).toBeGreaterThan(200);
    } finally {
      load.onModuleDestroy();
    }
  });
});

describe('SubmitLoad commit latency', () => {
  it('is the least commit time answered within the last second, and 0 with none', () => {
    const load = new SubmitLoad({ maxLoopDelayMs: 0, maxCommitLatencyMs: 1000 });
    try {
      const t = 10_000;
      expect(load.commitLatencyMs(t)).toBe(0);
      load.observeCommit(3000, t);
      load.observeCommit(1500, t + 200);
      load.observeCommit(2500, t + 400);
      // answered within (t+1000−1000, t+1000]: 3000, 1500, 2500 → the least is 1500
      expect(load.commitLatencyMs(t + 1000)).toBe(1500);
      // at t+1300 the answers at t and t+200 have left the second: 2500 is the least left
      expect(load.commitLatencyMs(t + 1300)).toBe(2500);
      // at t+1500 none is left: no evidence, 0
      expect(load.commitLatencyMs(t + 1500)).toBe(0);
    } finally {
      load.onModuleDestroy();
    }
  });
});

describe('shedReason', () => {
  const limits: OverloadLimits = { maxLoopDelayMs: 500, maxCommitLatencyMs: 2000 };
  it.each<[OverloadLimits, number, number, string | undefined]>([
    // delay 100 ≤ 500, commit 0 (none answered): taken
    [limits, 100, 0, undefined],
    // delay 500 = the most: still taken
    [limits, 500, 0, undefined],
    // delay 501 > 500: shed
    [limits, 501, 0, 'event_loop_delay'],
    // commit 2000 = the most: taken
    [limits, 0, 2000, undefined],
    // commit 2001 > 2000: shed
    [limits, 0, 2001, 'commit_latency'],
    // both past: the loop is named (a starved replica also commits late)
    [limits, 501, 2001, 'event_loop_delay'],
    // 0 turns each limit off
    [{ maxLoopDelayMs: 0, maxCommitLatencyMs: 2000 }, 10_000, 0, undefined],
    [{ maxLoopDelayMs: 500, maxCommitLatencyMs: 0 }, 0, 60_000, undefined],
  ])('%o with %d ms of loop delay and %d ms of commit time: %s', (l, loopDelayMs, commitLatencyMs, want) => {
    expect(shedReason(l, { loopDelayMs, commitLatencyMs })).toBe(want);
  });
});

describe('an admission replica over its capacity', () => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  let etcd: LocalEtcd;
  let store: EtcdStore;
  let admission: RunningService;
  const submit = (name: string) =>
    fetch(`${admission.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: 'Bearer token-a', 'content-type': 'application/json' },
      body: JSON.stringify({ name, command: ['true'], resources: { cpu: '100m' } }),
    });

  beforeAll(async () => {
    etcd = await startEtcd();
    store = new EtcdStore({ endpoints: etcd.endpoints });
    await store.txn(
      [],
      [
        { put: store.keys.tenant('team-a'), value: { name: 'team-a' } },
        { put: store.keys.queue('default'), value: { name: 'default', tenant: 'team-a' } },
      ],
    );
    admission = await startAdmission({
      tokens: new TokenAuthenticator({ tokens: [{ sha256: sha('token-a'), tenant: 'team-a', role: 'tenant' }] }),
      config: { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 10, logLevel: 'error' },
      overload: { maxLoopDelayMs: 300, maxCommitLatencyMs: 0 },
      throttle: { maxInflight: 2 },
    });
    // Starting the service in this process kept the event loop busy for a while: past a second,
    // that stall has left the window the replica judges its delay over.
    await new Promise((r) => setTimeout(r, 1100));
  });
  afterAll(async () => {
    etcd.members[0].process.kill('SIGCONT');
    await admission?.close();
    await store?.close();
    await etcd?.stop();
  });

  it('sheds a submit past its most in flight at once, and takes submits again when they are answered', async () => {
    expect((await submit('before')).status).toBe(201);
    etcd.members[0].process.kill('SIGSTOP');
    let held: Array<Promise<Response>>;
    try {
      // two submits wait on the paused etcd (answered 503 unavailable after the committer's wait)
      held = [submit('held-1'), submit('held-2')];
      let heldAnswered = false;
      void Promise.race(held).then(
        () => {
          heldAnswered = true;
        },
        () => {
          heldAnswered = true;
        },
      );
      await new Promise((r) => setTimeout(r, 300));
      const shed = await submit('third');
      expect(shed.status).toBe(503);
      expect(shed.headers.get('retry-after')).toBe('1');
      expect(await shed.json()).toMatchObject({ error: { code: 'overloaded' } });
      // answered while the two in flight still wait on etcd: it was never queued behind them
      expect(heldAnswered).toBe(false);
      // reads are not submits
      expect((await fetch(`${admission.url}/healthz`)).status).toBe(200);
    } finally {
      etcd.members[0].process.kill('SIGCONT');
    }
    await Promise.all(held.map((p) => p.then((r) => r.text())));
    expect((await submit('after')).status).toBe(201);
  });

  it('sheds submits while its event loop is behind, and takes them again once it caught up', async () => {
    // the event loop blocked for 1,000 ms: the replica was far more than 300 ms behind
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      /* busy */
    }
    await new Promise((r) => setTimeout(r, 50));
    const shed = await submit('late');
    expect(shed.status).toBe(503);
    expect(((await shed.json()) as { error: { message: string } }).error.message).toMatch(/event loop/);
    // once a second without the block is measured, submits are taken again
    let status = 0;
    for (let i = 0; i < 50 && status !== 201; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await submit(`caught-up-${i}`)).status;
    }
    expect(status).toBe(201);
  });
});

describe('an admission replica whose etcd is slow to commit', () => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  let etcd: LocalEtcd;
  let store: EtcdStore;
  let admission: RunningService;
  const submit = (name: string) =>
    fetch(`${admission.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: 'Bearer token-a', 'content-type': 'application/json' },
      body: JSON.stringify({ name, command: ['true'], resources: { cpu: '100m' } }),
    });

  beforeAll(async () => {
    etcd = await startEtcd();
    store = new EtcdStore({ endpoints: etcd.endpoints });
    await store.txn(
      [],
      [
        { put: store.keys.tenant('team-a'), value: { name: 'team-a' } },
        { put: store.keys.queue('default'), value: { name: 'default', tenant: 'team-a' } },
      ],
    );
    admission = await startAdmission({
      tokens: new TokenAuthenticator({ tokens: [{ sha256: sha('token-a'), tenant: 'team-a', role: 'tenant' }] }),
      config: { etcdEndpoints: etcd.endpoints, leaseTtlSeconds: 10, logLevel: 'error' },
      overload: { maxLoopDelayMs: 0, maxCommitLatencyMs: 500 },
    });
  });
  afterAll(async () => {
    etcd.members[0].process.kill('SIGCONT');
    await admission?.close();
    await store?.close();
    await etcd?.stop();
  });

  it('sheds submits for a second after every commit in it took past the limit, naming etcd, and takes them again after', async () => {
    expect((await submit('before')).status).toBe(201);
    // etcd stopped for 1,200 ms while two submits wait on it: both are answered about 1,200 ms after they arrived
    etcd.members[0].process.kill('SIGSTOP');
    const held = [submit('held-1'), submit('held-2')];
    await new Promise((r) => setTimeout(r, 1200));
    etcd.members[0].process.kill('SIGCONT');
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([201, 201]);
    // every submit answered within the last second took ≥ 1,000 ms > 500: the next is shed at once
    const shed = await submit('while-slow');
    expect(shed.status).toBe(503);
    const body = (await shed.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('overloaded');
    expect(body.error.message).toMatch(/etcd took at least \d+ ms to commit each submit/);
    // Retry-After covers the commit time: ⌈≥ 1,000 ms / 1000⌉ ≥ 1 s
    expect(Number(shed.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const metrics = await (await fetch(`${admission.url}/metrics`)).text();
    expect(metrics).toMatch(/batch_admission_submits_shed_total\{[^}]*reason="commit_latency"[^}]*\} [1-9]/);
    // a second later the slow answers have left the window: taken again, and fast
    await new Promise((r) => setTimeout(r, 1100));
    expect((await submit('after')).status).toBe(201);
  });
});
