/**
 * Issue 13, defect 1: an executor must not abandon a group whose report landed though its
 * answer was lost. Real etcd, a real executor and task process; the lost answer is injected
 * through the store's test seam (`EtcdStore.seam`): the report's txn really commits, then its
 * caller sees a deadline, or the txn is sent again (what the etcd3 client's own retry did) and
 * the re-send fails its compare.
 */
import type { CallSeam } from '@batchapi/store';
import { GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { waitFor } from '@batchapi/proc';
import { bind, groupOf, jobOf, startNode, useTestbed } from './harness';

const tb = useTestbed();

/** Tampers with the first report txn that puts the group status of `jobId` with a running task. */
function firstRunningReport(jobId: string, tamper: <T>(send: () => Promise<T>) => Promise<T>): { seam: CallSeam; hit: () => boolean } {
  let hit = false;
  const seam: CallSeam = (call, send) => {
    const statusKey = tb.store.keys.group(jobId, 0, 1);
    const report =
      call.writes &&
      call.ops?.some((op) => 'put' in op && op.put === statusKey && (op.value as { tasks: Array<{ state: string }> }).tasks.some((t) => t.state === 'Running'));
    if (hit || !report) return send();
    hit = true;
    return tamper(send);
  };
  return { seam, hit: () => hit };
}

it('keeps running a group whose report landed though the client re-sent it and the re-send failed its compare; the job finishes', async () => {
  const ex = await startNode(tb, 'resent-node');
  try {
    const tamper = firstRunningReport('resent', async (send) => {
      await send();
      return send();
    });
    ex.ctx.store.seam = tamper.seam;
    await bind(tb, 'resent-node', 'resent', ['sh', '-c', 'sleep 1'], 1);
    const job = await waitFor(
      () => jobOf(tb, 'resent'),
      (j) => j?.phase === 'Succeeded',
      { timeoutMs: 15000 },
    );
    expect(tamper.hit()).toBe(true);
    expect(job?.phase).toBe('Succeeded');
    expect((await groupOf(tb, 'resent'))!.tasks).toMatchObject([{ state: 'Succeeded', exitCode: 0 }]);
  } finally {
    await ex.close();
  }
});

it('settles a report whose answer was lost after the commit (a deadline, and the re-read failed too) with the next flush, instead of killing the group', async () => {
  const ex = await startNode(tb, 'deadline-node');
  try {
    let readsDown = 0;
    const tamper = firstRunningReport('deadline', async (send) => {
      await send();
      readsDown = 4; // the read that would settle it now, and its 3 retries: doFlush keeps the group for the next flush
      throw new GRPCDeadlineExceededError('deadline exceeded after commit (test seam)');
    });
    ex.ctx.store.seam = (call, send) => {
      if (!call.writes && readsDown > 0) {
        readsDown--;
        return Promise.reject(new GRPCUnavailableError('unavailable (test seam)'));
      }
      return tamper.seam(call, send);
    };
    await bind(tb, 'deadline-node', 'deadline', ['sh', '-c', 'sleep 1'], 1);
    const job = await waitFor(
      () => jobOf(tb, 'deadline'),
      (j) => j?.phase === 'Succeeded',
      { timeoutMs: 15000 },
    );
    expect(tamper.hit()).toBe(true);
    expect(readsDown).toBe(0);
    expect(job).toMatchObject({ phase: 'Succeeded', counts: { succeeded: 1, failed: 0 } });
    expect((await groupOf(tb, 'deadline'))!.tasks).toMatchObject([{ state: 'Succeeded', exitCode: 0 }]);
  } finally {
    await ex.close();
  }
});
