/**
 * An executor restarted on a node where its previous incarnation ran tasks treats as left over
 * (ended `NodeLost`, not run again at the same attempt) only the bindings that existed when it
 * started — never one bound to it later, even when that binding reaches it through a relisting
 * of its bindings (a watch that was down) rather than a watch event (issue 13, defect 9) — and
 * kills every task a previous incarnation left, recorded or not, before it settles their attempts.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Binding } from '@batchapi/api';
import type { Versioned } from '@batchapi/store';
import type { RunningExecutor } from '../src';
import { waitFor } from '@batchapi/proc';
import { bind, groupAlive, groupOf, jobOf, startNode, useTestbed } from './harness';

const tb = useTestbed();
let ex: RunningExecutor | undefined;
afterAll(async () => {
  await ex?.close();
});

/** What the agent's informer hands it: the handler of a (re)listing, and the informer itself. */
interface AgentInternals {
  informer?: { stop(): Promise<void> };
  onSync(items: Array<Versioned<Binding>>): void;
}

it('runs a binding that arrives in a relisting after a restart, instead of ending it NodeLost', async () => {
  // The first incarnation runs a task: the node's process-group ledger now has records.
  const first = await startNode(tb, 'reborn');
  await bind(tb, 'reborn', 'before', ['true'], 1, { resources: { cpu: 100 } });
  expect(
    await waitFor(
      () => jobOf(tb, 'before'),
      (j) => j?.phase === 'Succeeded',
    ),
  ).toMatchObject({ phase: 'Succeeded' });
  await first.close();

  ex = await startNode(tb, 'reborn');
  const agent = ex.agent as unknown as AgentInternals;
  // Its watch goes down; meanwhile the scheduler binds new work here; then its bindings are listed again.
  await agent.informer?.stop();
  await bind(tb, 'reborn', 'after', ['true'], 1, { resources: { cpu: 100 } });
  agent.onSync((await tb.store.listAll<Binding>(tb.store.keys.bindingsOf('reborn'))).items);

  const done = await waitFor(
    () => jobOf(tb, 'after'),
    (j) => j?.phase === 'Succeeded' || j?.phase === 'Failed' || (j?.pending[0]?.attempt ?? 1) > 1,
  );
  expect((await groupOf(tb, 'after'))?.tasks[0]).toMatchObject({ state: 'Succeeded', exitCode: 0 });
  expect(done).toMatchObject({ phase: 'Succeeded', counts: { succeeded: 1 } });
});

it('kills a task its previous incarnation started but never recorded, and ends its attempt NodeLost instead of running it again', async () => {
  // An executor killed between starting a task and recording its process group (or before the
  // task's parent-death signal was armed) leaves a task no record names: a clean-clone nemesis
  // run saw it run on beside its own rerun. Here no executor ran: only the task is left.
  const node = 'orphan-node';
  await bind(tb, node, 'orphaned', ['true'], 1, { resources: { cpu: 100 } });
  const resultPath = join(tb.dir, node, 'logs', 'orphaned', '0', '1.result.json');
  const orphan = spawn('sleep', ['60'], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH, BATCH_NODE: node, BATCH_JOB_ID: 'orphaned', BATCH_RESULT_PATH: resultPath },
  });
  const died = new Promise<string | null>((r) => orphan.once('exit', (_code, signal) => r(signal)));
  // A task of the same node name under another executor's data directory is not this one's.
  const stranger = spawn('sleep', ['60'], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH, BATCH_NODE: node, BATCH_JOB_ID: 'x', BATCH_RESULT_PATH: join(tb.dir, 'elsewhere', 'r.json') },
  });
  try {
    const restarted = await startNode(tb, node);
    try {
      expect(await died).toBe('SIGKILL');
      const group = await waitFor(
        () => groupOf(tb, 'orphaned'),
        (g) => g?.tasks[0]?.state === 'Failed',
      );
      expect(group?.tasks[0]).toMatchObject({ state: 'Failed', reason: 'NodeLost' });
      expect(groupAlive(stranger.pid!)).toBe(true);
    } finally {
      await restarted.close();
    }
  } finally {
    try {
      process.kill(-stranger.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    try {
      process.kill(-orphan.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
