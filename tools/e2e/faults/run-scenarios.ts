/** Runs scenarios on one fault cluster as a jest suite and prints the table at the end. */
import { FaultCluster, type ScenarioResult, table } from './fault-cluster';
import { ARCHIVE_AFTER_S, type Scenario, TTL } from './scenarios';

export function faultSuite(scenarios: Scenario[]): void {
  const c = new FaultCluster();
  const rows: ScenarioResult[] = [];
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
      const r = await c.scenario(s.name, () => s.fault(c), s.opts);
      rows.push(r);
      const after = await s.after?.(c);
      if (after) r.problems.push(after);
      await c.reviveAll(); // the next scenario starts with every replica
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
