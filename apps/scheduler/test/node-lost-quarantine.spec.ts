/**
 * A node the scheduler reaps 3 times in 10 minutes with tasks on it is quarantined (`node_lost`),
 * but losses of many nodes at once count toward no quarantine (`isMassLoss`): a stalled machine or
 * an etcd outage that costs every executor its lease must not cordon the whole fleet and leave the
 * work nowhere to run. Real etcd, one scheduler; a node's loss is its key's delete, as its lease's
 * expiry does; the wait before a reap is 300 ms here.
 */
import type { Binding, Cordon } from '@batchapi/api';
import { submitJob } from '@batchapi/store';
import { waitFor } from '@batchapi/proc';
import { allBindings, nodeRecord, putNode, queuedJob, useScheduler } from './harness';

// The counts of a node's losses are the leader's (in memory): a 20 s lease keeps one leader through
// a stall of a loaded machine. The losses are reaped 300 ms after the node goes.
const suite = useScheduler({ tuning: { nodeLostAfterMs: 300 }, leaseTtlSeconds: 20 });

const holds = (bs: readonly Binding[], node: string) => bs.some((b) => b.node === node);
const cordonOf = async (node: string) => (await suite.store.get<Cordon>(suite.store.keys.cordon(node)))?.value;

/** Waits until each of `nodes` holds a task, deletes their keys in one transaction, waits until they are reaped, and registers them again. */
async function loseTogether(nodes: readonly string[]): Promise<void> {
  const held = await waitFor(
    () => allBindings(suite.store),
    (bs) => nodes.every((n) => holds(bs, n)),
    { timeoutMs: 15_000 },
  );
  expect(nodes.filter((n) => !holds(held, n))).toEqual([]);
  await suite.store.txn(
    [],
    nodes.map((n) => ({ delete: suite.store.keys.node(n) })),
  );
  // Reaped: bindings gone, and then the allocation, the reap's last write (registered again before
  // that, a node's reap stops and leaves its groups to its executor: no loss to count).
  const gone = async (n: string) => !holds(await allBindings(suite.store), n) && (await suite.store.get(suite.store.keys.alloc(n))) === undefined;
  const reaped = await waitFor(
    () => Promise.all(nodes.map(gone)),
    (gs) => gs.every(Boolean),
    { timeoutMs: 15_000 },
  );
  expect(nodes.filter((_, k) => !reaped[k])).toEqual([]);
  for (const n of nodes) await putNode(suite.store, nodeRecord(n, 1));
}

it('quarantines no node when every node is lost at once, three times over', async () => {
  const fleet = ['m1', 'm2', 'm3'];
  for (const n of fleet) await putNode(suite.store, nodeRecord(n, 1));
  await submitJob(suite.store, queuedJob('mass', 3, { cpu: 1000 }));
  for (let i = 0; i < 3; i++) await loseTogether(fleet);
  // the work runs on: its tasks are bound again on the fleet that came back (a cycle after the reap
  // pass that would have written any quarantine)
  const again = await waitFor(
    () => allBindings(suite.store),
    (bs) => fleet.every((n) => holds(bs, n)),
    { timeoutMs: 15_000 },
  );
  expect(fleet.filter((n) => !holds(again, n))).toEqual([]);
  // each lost with a task three times within the window: one at a time, that quarantines (below)
  expect(await Promise.all(fleet.map(cordonOf))).toEqual([undefined, undefined, undefined]);
});

it('quarantines a node lost alone three times while the others stay', async () => {
  for (const n of ['q2', 'q3', 'q4', 'q1']) await putNode(suite.store, nodeRecord(n, 1));
  // more tasks than the cluster has cores (whatever other work holds), so some always wait and
  // take q1 each time it comes back
  await submitJob(suite.store, queuedJob('one', 16, { cpu: 1000 }));
  await loseTogether(['q1']);
  await loseTogether(['q1']);
  expect(await cordonOf('q1')).toBeUndefined();
  await loseTogether(['q1']);
  const cordon = await waitFor(
    () => cordonOf('q1'),
    (c) => c !== undefined,
  );
  expect(cordon?.quarantine).toEqual({ cause: 'node_lost', failures: 3 });
  expect(await Promise.all(['q2', 'q3', 'q4', 'm1'].map(cordonOf))).toEqual([undefined, undefined, undefined, undefined]);
});
