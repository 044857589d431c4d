/**
 * Quarantine against a real etcd: a node that cannot start attempts (its files cannot be
 * made) reports them as NodeError — requeued at the next attempt, not the task's failure — and
 * after three such failures quarantines itself: a cordon with the cause, and a metric.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cordon } from '@batchapi/api';
import { waitFor } from '@batchapi/proc';
import { bind, groupOf, jobOf, startNode, useTestbed } from './harness';

const tb = useTestbed();

it('reports attempts the node cannot start as NodeError, requeues them, and quarantines the node after three', async () => {
  // A file where the node's log directory must be: no attempt's files can be made.
  const dataDir = join(tb.dir, 'broken-node');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, 'logs'), 'not a directory');
  const ex = await startNode(tb, 'broken-node', { dataDir });
  try {
    await bind(tb, 'broken-node', 'cannot-start', ['true'], 3, { resources: { cpu: 100 } });
    const group = await waitFor(
      () => groupOf(tb, 'cannot-start'),
      (g) => !!g && g.tasks.every((t) => t.state === 'Failed'),
      { timeoutMs: 8000 },
    );
    expect(group!.tasks.map((t) => t.reason)).toEqual(['NodeError', 'NodeError', 'NodeError']);
    // not the tasks' fault: all three wait for attempt 2 elsewhere, none counted failed
    const job = await waitFor(
      () => jobOf(tb, 'cannot-start'),
      (j) => (j?.pending.length ?? 0) > 0,
      { timeoutMs: 5000 },
    );
    expect(job).toMatchObject({ counts: { failed: 0 }, pending: [{ start: 0, end: 3, attempt: 2 }] });
    const cordon = await waitFor(
      () => tb.store.get<Cordon>(tb.store.keys.cordon('broken-node')),
      (c) => !!c,
      { timeoutMs: 5000 },
    );
    expect(cordon!.value).toMatchObject({ node: 'broken-node', by: 'batchapi', quarantine: { cause: 'node_error', failures: 3 } });
    expect(cordon!.value.reason).toMatch(/^quarantined: 3 attempts could not start on this node within 10 min; last: could not make the attempt's files/);
    const metrics = await (await fetch(`${ex.url}/metrics`)).text();
    expect(metrics).toMatch(/batch_node_quarantined_total\{node="broken-node",reason="node_error",service="executor"\} 1\n/);
  } finally {
    await ex.close();
  }
});
