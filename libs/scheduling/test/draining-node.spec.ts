/**
 * A node whose executor drains for a graceful stop (its record's `draining` mark) takes no new
 * work, like a cordoned one: the cycle places nothing there, and "why pending" says so.
 */
import { buildSnapshot, explainJob, MemoryPlanner, schedule } from '@batchapi/scheduling';
import { boundTasks, jobRecord, nodeRecord, T0 } from './fixtures';

it('places nothing on a draining node and names it in why-pending', async () => {
  // 2 nodes × 2 cores, b draining; 4 one-core tasks → 2 bound on a (2 cores), 2 wait (b takes none)
  const draining = { since: T0, deadline: T0 + 60_000 };
  const p = new MemoryPlanner({ nodes: [nodeRecord('a', { cpu: 2 }), nodeRecord('b', { cpu: 2 }, { draining })], jobs: [jobRecord('j', 4, { cpu: 1 })] });
  const s = buildSnapshot(p.state(), T0);
  expect(s.nodes.map((n) => n.name)).toEqual(['a']);
  expect([s.drainingNodes, s.cordonedNodes]).toEqual([1, 0]);
  await p.apply(schedule(s, {}));
  expect(p.bindings.map((b) => [b.node, b.end - b.start])).toEqual([['a', 2]]);
  expect(boundTasks(p.bindings, 'j')).toBe(2);
  const after = buildSnapshot(p.state(), T0 + 10);
  expect(explainJob(after, after.jobs.get('j')!, 'scheduler').messages).toContain("1 node's executor is stopping (draining) and takes no new work");
});
