/**
 * "Why pending" says what placement would do: on generated clusters (selectors, taints,
 * cordons, GPUs, gangs, priorities, quotas with cohorts, work already running), for every
 * waiting job, the explanation's verdict — tasks placeable now — equals the tasks the cycle's
 * `schedule` places for it on the same snapshot.
 */
import fc from 'fast-check';
import { buildSnapshot, explainJob, MemoryPlanner, schedule } from '@batchapi/scheduling';
import { cordon, jobRecord, nodeRecord, queue, T0 } from './fixtures';

const arbNode = fc.record({
  cpu: fc.integer({ min: 1, max: 16 }),
  gpu: fc.constantFrom(0, 0, 2, 4),
  zone: fc.constantFrom('a', 'b'),
  tainted: fc.boolean(),
  cordoned: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
});
const arbJob = fc.record({
  tasks: fc.integer({ min: 1, max: 12 }),
  cpu: fc.integer({ min: 1, max: 6 }),
  gpu: fc.constantFrom(0, 0, 0, 1, 2),
  priority: fc.constantFrom(0, 0, 5),
  queue: fc.constantFrom('q1', 'q2', 'q3'),
  zone: fc.constantFrom(undefined, undefined, 'a', 'b'),
  tolerates: fc.boolean(),
  gang: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  age: fc.integer({ min: 0, max: 1000 }),
});

describe('property: the explanation of every waiting job agrees with placement', () => {
  it('holds on generated clusters', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(arbNode, { minLength: 0, maxLength: 8 }),
        fc.array(arbJob, { minLength: 1, maxLength: 10 }),
        fc.array(arbJob, { minLength: 0, maxLength: 6 }),
        fc.integer({ min: 0, max: 24 }),
        async (nodes, running, waiting, lenderCpu) => {
          const p = new MemoryPlanner({
            nodes: nodes.map((n, i) =>
              nodeRecord(
                `n${i}`,
                { cpu: n.cpu, gpu: n.gpu },
                { labels: { zone: n.zone }, taints: n.tainted ? [{ key: 'dedicated', effect: 'NoSchedule' }] : [] },
              ),
            ),
            cordons: nodes.flatMap((n, i) => (n.cordoned ? [cordon(`n${i}`)] : [])),
            // q1 lends to q2 within cohort c (nominal from the run); q3 has no quota
            queues: [queue('q1', { cpu: lenderCpu }, { cohort: 'c' }), queue('q2', { cpu: 4 }, { cohort: 'c' })],
          });
          const toRecord = (j: (typeof running)[number], id: string, createdAt: number) =>
            jobRecord(
              id,
              j.tasks,
              { cpu: j.cpu, gpu: j.gpu },
              {
                queue: j.queue,
                createdAt,
                spec: {
                  priority: j.priority,
                  gang: j.gang,
                  ...(j.zone ? { selector: { zone: j.zone } } : {}),
                  ...(j.tolerates ? { tolerations: [{ key: 'dedicated', operator: 'Exists' as const }] } : {}),
                },
              },
            );
          // What runs already: one cycle over the first jobs.
          running.forEach((j, i) => p.jobs.set(`r${i}`, toRecord(j, `r${i}`, T0 - 10_000 + j.age)));
          await p.apply(schedule(buildSnapshot(p.state(), T0)));
          waiting.forEach((j, i) => p.jobs.set(`w${i}`, toRecord(j, `w${i}`, T0 + j.age)));
          const s = buildSnapshot(p.state(), T0 + 2000);
          const plan = schedule(s, { backlog: { maxJobs: Number.POSITIVE_INFINITY } });
          for (const w of s.work) {
            const placed = plan.placements.filter((x) => x.jobId === w.jobId).reduce((n, x) => n + x.count, 0);
            const why = explainJob(s, s.jobs.get(w.jobId)!, 'scheduler');
            expect({ job: w.jobId, placeableNow: why.placeableNow }).toEqual({ job: w.jobId, placeableNow: placed });
            if (placed === 0 && w.gang) expect(why.messages.some((m) => m.startsWith('gang:'))).toBe(true);
          }
        },
      ),
      { numRuns: 300, seed: 20261202 },
    );
  });
});
