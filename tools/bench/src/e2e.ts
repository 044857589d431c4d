/**
 * `bench e2e`: a 1,000,000-task array job submitted over HTTP, admitted by the quota
 * service, placed and bound by the elected scheduler through a real etcd onto 10,000
 * simulated nodes (registered records; nothing runs). Beside it, the raw batched-txn write
 * rate of the same etcd measured a moment before, so the ratio to etcd's own limit shows.
 */
import { createHash } from 'node:crypto';
import type { Binding, JobRecord, NodeAllocation, NodeRecord } from '@batchapi/api';
import { parseResources } from '@batchapi/api';
import { startAdmission, TokenAuthenticator } from '@batchapi/admission';
import { startQuota } from '@batchapi/quota';
import type { RunningService } from '@batchapi/runtime';
import { startScheduler } from '@batchapi/scheduler';
import { EtcdStore, MAX_TXN_OPS, type Op, startEtcd } from '@batchapi/store';
import { progress } from './rng';

export interface E2eBenchOptions {
  /** @default 10000 */ nodes: number;
  /** @default 1000000 */ tasks: number;
  /** Give up after this many seconds. @default 300 */ timeout: number;
}

/** Puts per second through transactions of 128 puts, `txns` of them, `concurrency` at a time. */
async function rawWriteRate(store: EtcdStore, txns: number, concurrency: number): Promise<number> {
  const value = { x: 'y'.repeat(200) };
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < txns) {
        const t = next++;
        const ops: Op[] = Array.from({ length: MAX_TXN_OPS }, (_, i) => ({ put: `/raw/${t}/${i}`, value }));
        await store.txn([], ops);
      }
    }),
  );
  return (txns * MAX_TXN_OPS) / ((performance.now() - started) / 1000);
}

export async function benchE2e(o: E2eBenchOptions): Promise<Record<string, unknown>> {
  const etcd = await startEtcd();
  const store = new EtcdStore({ endpoints: etcd.endpoints, callTimeoutMs: 10_000 });
  const services: RunningService[] = [];
  try {
    progress('e2e: measuring the raw batched-txn write rate of this etcd');
    const serialRate = await rawWriteRate(store, 100, 1);
    const parallelRate = await rawWriteRate(store, 200, 4);
    progress(`e2e: raw writes ${Math.round(serialRate)}/s serial, ${Math.round(parallelRate)}/s with 4 in flight (128 puts per txn)`);

    progress(`e2e: registering ${o.nodes} simulated nodes`);
    const capacity = parseResources({ cpu: '32', memory: '128Gi' });
    for (let i = 0; i < o.nodes; i += MAX_TXN_OPS) {
      const ops: Op[] = [];
      for (let k = i; k < Math.min(o.nodes, i + MAX_TXN_OPS); k++) {
        const node: NodeRecord = {
          name: `sim-${String(k).padStart(5, '0')}`,
          capacity,
          labels: {},
          taints: [],
          gpus: [],
          url: 'http://127.0.0.1:1',
          registeredAt: Date.now(),
        };
        ops.push({ put: store.keys.node(node.name), value: node });
      }
      await store.txn([], ops);
    }
    const config = { etcdEndpoints: etcd.endpoints, logLevel: 'error', leaseTtlSeconds: 5 };
    services.push(await startQuota({ config, cluster: { tenants: [{ name: 'bench' }], queues: [{ name: 'default', tenant: 'bench' }] } }));
    const scheduler = await startScheduler({ config, tuning: { idleMs: 50, busyMs: 0 } });
    services.push(scheduler);
    const token = 'bench-token';
    const admission = await startAdmission({
      config,
      tokens: new TokenAuthenticator({ tokens: [{ sha256: createHash('sha256').update(token).digest('hex'), tenant: 'bench', role: 'tenant' }] }),
    });
    services.push(admission);
    // Wait until the scheduler's cache has every node.
    const svc = scheduler.app.get((await import('@batchapi/scheduler')).SchedulerService);
    while (svc.cache.nodes.items.size < o.nodes) await new Promise((r) => setTimeout(r, 50));

    progress(`e2e: submitting one array job of ${o.tasks} tasks`);
    const t0 = performance.now();
    const res = await fetch(`${admission.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'million', tasks: o.tasks, resources: { cpu: '250m', memory: '256Mi' }, command: ['true'] }),
    });
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    const tSubmitted = performance.now();
    let bound = 0;
    let lastReport = 0;
    for (;;) {
      const job = (await store.get<JobRecord>(store.keys.job(id)))!.value;
      bound = o.tasks - job.pending.reduce((n, r) => n + r.end - r.start, 0);
      const elapsed = (performance.now() - t0) / 1000;
      if (elapsed - lastReport >= 2) {
        progress(`e2e: ${bound}/${o.tasks} bound after ${elapsed.toFixed(1)} s (${job.phase})`);
        lastReport = elapsed;
      }
      if (bound >= o.tasks || elapsed > o.timeout) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - t0) / 1000;
    progress('e2e: checking the bindings against the node allocations');
    const check = await consistency(store, capacity);
    const groups = (await store.list(store.keys.bindings(), { limit: 1 })).revision;
    const metrics = await scheduler.ctx.registry.getSingleMetricAsString('batch_scheduler_binds_failed_total');
    return {
      bench: 'e2e',
      nodes: o.nodes,
      tasks: o.tasks,
      bound,
      seconds: round(seconds),
      submitMs: round(tSubmitted - t0),
      bindsPerSecond: Math.round(bound / seconds),
      check,
      etcdRevisionAfter: Number(groups),
      rawEtcd: { putsPerSecondSerial: Math.round(serialRate), putsPerSecond4InFlight: Math.round(parallelRate), putsPerTxn: MAX_TXN_OPS },
      bindsFailed: metrics
        .split('\n')
        .filter((l) => l.startsWith('batch_scheduler_binds_failed_total'))
        .map((l) => l.replace('batch_scheduler_binds_failed_total', '').trim()),
      target: '< 60 s',
    };
  } finally {
    for (const s of services.reverse()) await s.close().catch(() => undefined);
    await store.close();
    await etcd.stop();
  }
}

/** Every task bound once, and no node holds more than its capacity. */
async function consistency(store: EtcdStore, capacity: Record<string, number>) {
  const bindings = (await store.listAll<Binding>(store.keys.bindings())).items.map((b) => b.value);
  const seen = new Set<number>();
  let duplicates = 0;
  for (const b of bindings)
    for (let i = b.start; i < b.end; i++) {
      if (seen.has(i)) duplicates++;
      seen.add(i);
    }
  const allocs = (await store.listAll<NodeAllocation>(store.keys.allocs())).items;
  const overCapacity = allocs.filter((a) => Object.entries(a.value.used).some(([k, v]) => v > (capacity[k] ?? 0))).length;
  return { groups: bindings.length, tasksBound: seen.size, duplicateBindings: duplicates, nodesUsed: allocs.length, nodesOverCapacity: overCapacity };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
