/**
 * `bench failover`: two scheduler processes against a 3-member etcd under a steady stream of
 * jobs; the leader is killed with SIGKILL mid-burst. Prints the time until the new leader
 * binds its first task, against the lease TTL, and the count of double bindings (must be 0).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { type Binding, type JobRecord, type NodeRecord, parseResources } from '@batchapi/api';
import { newServiceToken } from '@batchapi/runtime';
import { EtcdStore, MAX_TXN_OPS, type Op, startEtcd, submitJob } from '@batchapi/store';
import { freePort } from '@batchapi/proc';
import { progress } from './rng';

export interface FailoverBenchOptions {
  /** Lease TTL of the schedulers, seconds. @default 5 */ ttl: number;
  /** @default 500 */ nodes: number;
  /** A job of 10 tasks every this many milliseconds. @default 20 */ everyMs: number;
}

export async function benchFailover(o: FailoverBenchOptions): Promise<Record<string, unknown>> {
  const etcd = await startEtcd({ members: 3 });
  const store = new EtcdStore({ endpoints: etcd.endpoints });
  const procs = new Map<string, ChildProcess>();
  let submitting = true;
  try {
    const capacity = parseResources({ cpu: '64', memory: '256Gi' });
    for (let i = 0; i < o.nodes; i += MAX_TXN_OPS) {
      const ops: Op[] = [];
      for (let k = i; k < Math.min(o.nodes, i + MAX_TXN_OPS); k++) {
        const node: NodeRecord = { name: `sim-${k}`, capacity, labels: {}, taints: [], gpus: [], url: 'http://127.0.0.1:1', registeredAt: 0 };
        ops.push({ put: store.keys.node(node.name), value: node });
      }
      await store.txn([], ops);
    }
    await store.txn([], [{ put: store.keys.queue('default'), value: { name: 'default', tenant: 'bench', nominal: {} } }]);
    const main = join(dirname(require.resolve('@batchapi/scheduler/package.json')), 'dist/main.js');
    const serviceToken = newServiceToken();
    for (const id of ['sched-a', 'sched-b']) {
      const port = await freePort();
      procs.set(
        id,
        spawn(process.execPath, [main], {
          env: {
            ...process.env,
            BATCH_ETCD_ENDPOINTS: etcd.endpoints.join(','),
            BATCH_PORT: String(port),
            BATCH_LEASE_TTL: String(o.ttl),
            BATCH_INSTANCE_ID: id,
            BATCH_SERVICE_TOKEN: serviceToken,
            BATCH_LOG_LEVEL: 'error',
          },
          stdio: 'ignore',
        }),
      );
    }
    // Watch every binding as it lands, with its time.
    const binds: Array<{ at: number; b: Binding }> = [];
    const informer = await store.inform<Binding>(store.keys.bindings(), {
      onSync: () => undefined,
      onEvent: (ev) => {
        if (ev.type === 'put' && ev.value) binds.push({ at: Date.now(), b: ev.value });
      },
    });
    let n = 0;
    const submitter = (async () => {
      while (submitting) {
        const id = `job-${String(n++).padStart(6, '0')}`;
        const job: JobRecord = {
          id,
          tenant: 'bench',
          queue: 'default',
          phase: 'Queued',
          createdAt: Date.now(),
          spec: { name: id, command: ['true'], env: {}, resources: parseResources({ cpu: '1', memory: '1Gi' }), tasks: 10, priority: 0, labels: {} },
          pending: [{ start: 0, end: 10, attempt: 1 }],
          counts: { succeeded: 0, failed: 0, cancelled: 0 },
        };
        await submitJob(store, job).catch(() => undefined);
        await new Promise((r) => setTimeout(r, o.everyMs));
      }
    })();
    progress('failover: waiting for a leader to bind');
    while (binds.length === 0) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 2000));
    const leader = (await store.get<{ identity: string }>(store.keys.leader('scheduler')))!.value.identity;
    const killedAt = Date.now();
    procs.get(leader)!.kill('SIGKILL');
    progress(`failover: killed the leader ${leader} (kill -9) after ${binds.length} bindings`);
    const before = binds.length;
    while (binds.length === before && Date.now() - killedAt < (o.ttl + 30) * 1000) await new Promise((r) => setTimeout(r, 10));
    const firstBindAfter = binds.find((x, i) => i >= before)?.at;
    const newLeader = (await store.get<{ identity: string }>(store.keys.leader('scheduler')))?.value.identity;
    await new Promise((r) => setTimeout(r, 1000));
    submitting = false;
    await submitter;
    await informer.stop();
    // Double bindings: one task index bound twice at one attempt.
    const seen = new Set<string>();
    let doubles = 0;
    for (const { b } of binds)
      for (let i = b.start; i < b.end; i++) {
        const k = `${b.jobId}/${i}/${b.attempt}`;
        if (seen.has(k)) doubles++;
        seen.add(k);
      }
    const failover = firstBindAfter ? (firstBindAfter - killedAt) / 1000 : null;
    progress(`failover: new leader ${newLeader} bound its first task ${failover ?? 'never'} s after the kill`);
    return {
      bench: 'failover',
      leaseTtlSeconds: o.ttl,
      etcdMembers: 3,
      killed: leader,
      newLeader,
      secondsToFirstBind: failover,
      targetSeconds: o.ttl + 2,
      withinTarget: failover !== null && failover <= o.ttl + 2,
      jobsSubmitted: n,
      bindings: binds.length,
      tasksBound: seen.size,
      doubleBindings: doubles,
    };
  } finally {
    submitting = false;
    for (const p of procs.values()) p.kill('SIGKILL');
    await store.close();
    await etcd.stop();
  }
}
