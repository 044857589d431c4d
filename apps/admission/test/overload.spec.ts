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
    const load = new SubmitLoad({ maxLoopDelayMs: 200 });
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

describe('shedReason', () => {
  const limits: OverloadLimits = { maxLoopDelayMs: 500 };
  it.each([
    // delay 100 ≤ 500: taken
    [limits, 100, undefined],
    // delay 500 = the most: still taken
    [limits, 500, undefined],
    // delay 501 > 500: shed
    [limits, 501, 'event_loop_delay'],
    // 0 turns the limit off
    [{ maxLoopDelayMs: 0 }, 10_000, undefined],
  ])('%o with %d ms of delay: %s', (l, delay, want) => {
    expect(shedReason(l, delay)).toBe(want);
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
      overload: { maxLoopDelayMs: 300 },
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
