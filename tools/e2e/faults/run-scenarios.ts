/** Runs scenarios on one fault cluster as a jest suite and prints the table at the end. */
import { FaultCluster, type ScenarioResult, table } from './fault-cluster';
import { ARCHIVE_AFTER_S, type Scenario, TTL } from './scenarios';

export function faultSuite(scenarios: Scenario[]): void {
  const c = new FaultCluster();
  const rows: ScenarioResult[] = [];
  // The scenario under way. A scenario that outlives its test's timeout keeps running (jest does
  // not stop it): the next one first waits for it, or its faults would land in the next one's run
  // (a rolling restart timed out on a box at load 11 and went on stopping replicas under the next
  // scenario, whose jobs then waited for a scheduler).
  let running: Promise<unknown> = Promise.resolve();
  // every scenario with a history store: finished jobs leave etcd during the run, and the check follows them
  beforeAll(() => c.start(TTL, { history: { archiveAfterS: ARCHIVE_AFTER_S } }), 120_000);
  afterAll(async () => {
    console.log(
      `fault scenarios (lease TTL ${TTL} s, 3-member etcd, 2 replicas of each service, PostgreSQL history, archived ${ARCHIVE_AFTER_S} s after the end):\n${table(rows)}`,
    );
    await c.stop();
  });
  it.each(scenarios.map((s) => [s.name, s] as const))(
    '%s: nothing lost, nothing run twice',
    async (_name, s) => {
      const why = s.skip?.(c);
      if (why) {
        console.log(`skipped "${s.name}": ${why}`);
        return;
      }
      await running;
      await c.reviveAll();
      const scenario = (async () => {
        const r = await c.scenario(s.name, () => s.fault(c), s.opts);
        rows.push(r);
        const after = await s.after?.(c);
        if (after) r.problems.push(after);
        await c.reviveAll(); // the next scenario starts with every replica
        return r;
      })();
      running = scenario.catch(() => undefined);
      const r = await scenario;
      expect({ lost: r.lost, duplicated: r.duplicated, archivedTwice: r.archivedTwice, problems: r.problems, extra: s.expect?.(r) }).toEqual({
        lost: 0,
        duplicated: 0,
        archivedTwice: 0,
        problems: [],
        extra: undefined,
      });
      expect(r.accepted).toBeGreaterThan(0);
    },
    240_000,
  );
}
