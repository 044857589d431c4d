import { type TopologyScenarioResult, topologyScenario } from './topology-scenario';

describe('topology scenario: gangs over racks with and without topology', () => {
  // 2 blocks × 2 racks × 4 nodes × 8 GPUs = 128 GPUs; 1 hour of a 1-GPU job every 5 s (60–600 s) and a gang every
  // 240 s (8, 16, 32 GPUs as tasks of 4 GPUs, 300–900 s): 85% of the GPUs offered (docs/scheduler.md has the 8-hour figures).
  let r: TopologyScenarioResult;
  beforeAll(() => {
    r = topologyScenario({ streamSeconds: 3600 });
  });

  it('required=rack places every gang within one rack, preferred=rack most, without topology few; and every gang starts', () => {
    console.log(JSON.stringify(r));
    expect(r.holds).toBe(true);
    expect(r.requiredRack.gangsInOneRack).toBe(1);
    expect(r.preferredRack.gangsInOneRack).toBeGreaterThan(r.withoutTopology.gangsInOneRack);
    expect(r.preferredRack.meanRacksPerGang).toBeLessThan(r.withoutTopology.meanRacksPerGang);
    for (const run of [
      r.withoutTopology,
      r.preferredRack,
      r.requiredRack,
      r.requiredRackNoDomainScore,
      r.requiredRackBackfill,
      r.requiredRackBackfillNoDomainScore,
      r.requiredRackPreemption,
    ])
      expect(run.gangsNeverStarted).toBe(0);
    // The price of required=rack: gangs wait for a whole rack, never less than without it.
    expect(r.requiredRack.gangWaitP99Seconds).toBeGreaterThanOrEqual(r.withoutTopology.gangWaitP99Seconds);
  });

  it('the domain score keeps racks whole for rack gangs: the 32-GPU gangs wait less with it', () => {
    expect(r.requiredRack.bigGangWaitP99Seconds).toBeLessThan(r.requiredRackNoDomainScore.bigGangWaitP99Seconds);
  });

  it("a reservation held within one rack bounds the gangs' wait: less than without, within 2 × the longest timeout (900 s)", () => {
    expect(r.requiredRackBackfillNoDomainScore.bigGangWaitP99Seconds).toBeLessThan(r.requiredRackNoDomainScore.bigGangWaitP99Seconds);
    expect(r.requiredRackBackfill.gangWaitP99Seconds).toBeLessThanOrEqual(r.requiredRack.gangWaitP99Seconds);
    for (const run of [r.requiredRackBackfill, r.requiredRackBackfillNoDomainScore]) expect(run.gangWaitP99Seconds).toBeLessThanOrEqual(2 * 900);
  });

  it('preemption for rack gangs stops tasks in one rack per gang and shortens their wait', () => {
    expect(r.requiredRackPreemption.preempted).toBeGreaterThan(0);
    expect(r.requiredRackPreemption.victimRacksPerGangMax).toBe(1);
    expect(r.requiredRackPreemption.gangWaitP99Seconds).toBeLessThanOrEqual(r.requiredRack.gangWaitP99Seconds);
  });
});
