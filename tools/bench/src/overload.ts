/**
 * `bench overload`: a submit storm well above a tenant's throttles against the local cluster
 * (services as separate processes, simulated nodes). Prints how many submits were accepted,
 * throttled (429) and shed (503), the latency of accepted submits, admission's memory before
 * and after, and how many accepted jobs are missing from etcd (must be 0).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobRecord } from '@batchapi/api';
import { LocalCluster } from '@batchapi/cli';
import { EtcdStore } from '@batchapi/store';
import { percentile, progress } from './rng';

export interface OverloadBenchOptions {
  /** Submits offered per second (open loop). @default 2000 */ rate: number;
  /** Seconds of storm. @default 10 */ seconds: number;
  /** The tenant's limit, submits per second (burst the same). @default 200 */ limit: number;
  /** Simulated nodes. @default 200 */ nodes: number;
  /** Seconds of warm-up at half the limit before the storm (not counted; fresh processes are slow). @default 10 */ warmup: number;
}

async function admissionRssBytes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^process_resident_memory_bytes\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? NaN);
}

export async function benchOverload(o: OverloadBenchOptions): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'batch-overload-'));
  progress(`overload: starting the local cluster with ${o.nodes} simulated nodes`);
  const cluster = await LocalCluster.start({ dataDir: dir, executors: 0, simulatedNodes: o.nodes, onStep: (s) => progress(`overload: ${s}`) });
  const store = new EtcdStore({ endpoints: cluster.etcd!.endpoints });
  try {
    const put = await fetch(`${cluster.apiUrl}/v1/tenants/default`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${cluster.operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ limits: { submitsPerSecond: o.limit, submitBurst: o.limit } }),
    });
    if (!put.ok) throw new Error(`setting the tenant's limits failed: ${put.status} ${await put.text()}`);
    await new Promise((r) => setTimeout(r, 500)); // admission's tenant watch
    const post = (key: string) =>
      fetch(`${cluster.apiUrl}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.tenantToken}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ command: ['true'], resources: { cpu: '100m', memory: '64Mi' }, env: { BATCH_SIM_SECONDS: '0.5' } }),
        signal: AbortSignal.timeout(10_000),
      });
    progress(`overload: warming up for ${o.warmup} s at ${o.limit / 2}/s`);
    const warm: Array<Promise<unknown>> = [];
    for (let i = 0, t0 = performance.now(); i < (o.limit / 2) * o.warmup; i++) {
      const wait = t0 + (i * 2000) / o.limit - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      warm.push(
        post(`warm-${i}`).then(
          (r) => r.text(),
          () => undefined,
        ),
      );
    }
    await Promise.all(warm);
    await new Promise((r) => setTimeout(r, 1000)); // let the bucket refill to its burst
    const rssBefore = await admissionRssBytes(cluster.apiUrl);
    const acceptedMs: number[] = [];
    const accepted: string[] = [];
    const codes: Record<string, number> = {};
    let withoutRetryAfter = 0;
    const total = o.rate * o.seconds;
    const started = performance.now();
    const inflight: Array<Promise<void>> = [];
    progress(`overload: ${o.rate} submits/s for ${o.seconds} s against a limit of ${o.limit}/s`);
    for (let i = 0; i < total; i++) {
      const wait = started + (i * 1000) / o.rate - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      inflight.push(
        (async () => {
          const t0 = performance.now();
          try {
            const res = await post(`storm-${i}`);
            codes[res.status] = (codes[res.status] ?? 0) + 1;
            if (res.status === 201) {
              acceptedMs.push(performance.now() - t0);
              accepted.push(((await res.json()) as { id: string }).id);
            } else {
              if ((res.status === 429 || res.status === 503) && !res.headers.get('retry-after')) withoutRetryAfter++;
              await res.text();
            }
          } catch {
            codes.network = (codes.network ?? 0) + 1;
          }
        })(),
      );
      if (i % o.rate === 0 && i > 0) progress(`overload: ${i}/${total} sent, ${accepted.length} accepted`);
    }
    await Promise.all(inflight);
    const seconds = (performance.now() - started) / 1000;
    const rssAfter = await admissionRssBytes(cluster.apiUrl);
    const stored = new Set((await store.listAll<JobRecord>(store.keys.jobs())).items.map((j) => j.value.id));
    const sorted = acceptedMs.sort((a, b) => a - b);
    return {
      offered: total,
      offeredPerSecond: o.rate,
      limitPerSecond: o.limit,
      seconds: Math.round(seconds * 10) / 10,
      accepted: accepted.length,
      acceptedPerSecond: Math.round(accepted.length / seconds),
      throttled429: codes[429] ?? 0,
      shed503: codes[503] ?? 0,
      otherStatuses: Object.fromEntries(Object.entries(codes).filter(([c]) => !['201', '429', '503'].includes(c))),
      withoutRetryAfter,
      acceptedP50Ms: Math.round(percentile(sorted, 50) * 10) / 10,
      acceptedP99Ms: Math.round(percentile(sorted, 99) * 10) / 10,
      admissionRssMiBBefore: Math.round(rssBefore / 2 ** 20),
      admissionRssMiBAfter: Math.round(rssAfter / 2 ** 20),
      lost: accepted.filter((id) => !stored.has(id)).length,
    };
  } finally {
    await store.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
