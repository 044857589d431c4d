import { topologyScenario } from './topology-scenario';

describe('topology scenario: gangs over racks with and without topology', () => {
  it('required=rack places every gang within one rack, preferred=rack most, without topology few; and every gang starts', () => {
    // 2 blocks × 2 racks × 4 nodes × 8 GPUs = 128 GPUs; 2 hours of a 1-GPU job every 5 s (60–600 s) and a gang every
    // 240 s (8, 16, 32 GPUs as tasks of 4 GPUs, 300–900 s): 88% of the GPUs offered (docs/scheduler.md has the 8-hour figures).
    const r = topologyScenario({ streamSeconds: 7200 });
    console.log(JSON.stringify(r));
    expect(r.holds).toBe(true);
    expect(r.requiredRack.gangsInOneRack).toBe(1);
    expect(r.preferredRack.gangsInOneRack).toBeGreaterThan(r.withoutTopology.gangsInOneRack);
    expect(r.preferredRack.meanRacksPerGang).toBeLessThan(r.withoutTopology.meanRacksPerGang);
    for (const run of [r.withoutTopology, r.preferredRack, r.requiredRack]) expect(run.gangsNeverStarted).toBe(0);
    // The price of required=rack: gangs wait for a whole rack (the 1-GPU stream does not know racks), never less than without it.
    expect(r.requiredRack.gangWaitP99Seconds).toBeGreaterThanOrEqual(r.withoutTopology.gangWaitP99Seconds);
  });
});
