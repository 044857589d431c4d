/**
 * The consolidation scenario (`npm run -s bench -- simulate --scenario consolidation`): batch work
 * that arrives and ends over hours on a fixed fleet (about half loaded) leaves room scattered over
 * many nodes; consolidation (the live defaults: one node a pass, 300 s idle, 60 s exempt time, a
 * pass every 10 s while nothing waits) empties the nodes whose tasks fit elsewhere. Measured:
 * node-hours in use (what an autoscaler that removes empty nodes would pay for) with it off, on
 * (moving only tasks younger than 600 s, the default), and on moving tasks of any age; the tasks
 * moved (each restarts: its work so far is lost) and when the last task ended.
 */
import { parseNodes, parseWorkload } from './inputs';
import { type SimConsolidation, simulate } from './simulate';
import { mulberry32 } from './random';

/** Settings of the consolidation scenario. */
export interface ConsolidationScenarioOptions {
  /** Nodes of 32 cores and 128 GiB. @default 24 */
  nodes?: number;
  /** One-task jobs, arriving at seeded random times over `arrivalSeconds`. @default 300 */
  jobs?: number;
  /** @default 14400 */
  arrivalSeconds?: number;
  /** Seed of the sizes, arrival times and durations. @default 11 */
  seed?: number;
  /** Consolidation settings of the run with it on. @default the live defaults */
  consolidation?: SimConsolidation;
}

/** One run's figures. */
export interface ConsolidationRun {
  nodeHours: number;
  moved: number;
  passes: number;
  /** Seconds until the last task ended. */
  makespan: number | null;
}

export interface ConsolidationScenarioResult {
  scenario: 'consolidation';
  settings: Required<ConsolidationScenarioOptions>;
  off: ConsolidationRun;
  on: ConsolidationRun;
  /** On, moving tasks of any age (`maxTaskAgeSeconds: 0`). */
  onAnyAge: ConsolidationRun;
  /** On with re-pack (`repack: true`, its defaults), tasks younger than the age bound only. */
  onRepack: ConsolidationRun;
  /** Node-hours saved, as a share of those with it off (negative: more used), by `on`, `onAnyAge` and `onRepack`. */
  saved: { on: string; onAnyAge: string; onRepack: string };
  /** Tasks moved, as a share of the jobs. */
  movedShare: { on: string; onAnyAge: string; onRepack: string };
}

/**
 * Jobs of 1–12 cores and 2–40 GiB arrive uniformly over `arrivalSeconds`; each runs 5 minutes to 3
 * hours (log-uniform: most end soon, a few hold their node long — the tail that strands nodes).
 */
export function consolidationScenario(o: ConsolidationScenarioOptions = {}): ConsolidationScenarioResult {
  const settings = {
    nodes: o.nodes ?? 24,
    jobs: o.jobs ?? 300,
    arrivalSeconds: o.arrivalSeconds ?? 14_400,
    seed: o.seed ?? 11,
    consolidation: o.consolidation ?? {},
  };
  const rand = mulberry32(settings.seed);
  const nodes = parseNodes(
    Array.from({ length: settings.nodes }, (_, i) => JSON.stringify({ name: `n${String(i).padStart(3, '0')}`, capacity: { cpu: '32', memory: '128Gi' } })).join(
      '\n',
    ),
  );
  const work = parseWorkload(
    Array.from({ length: settings.jobs }, (_, i) =>
      JSON.stringify({
        name: `j${i}`,
        submitAt: Math.round(rand() * settings.arrivalSeconds),
        resources: { cpu: String(1 + Math.floor(rand() * 12)), memory: `${2 + Math.floor(rand() * 39)}Gi` },
        duration: Math.round(300 * Math.exp(rand() * Math.log(36))),
      }),
    ).join('\n'),
  );
  const run = (c: SimConsolidation): ConsolidationRun => {
    const r = simulate(nodes, work, { consolidation: c });
    const done = r.consolidation!;
    return { nodeHours: Math.round((done.nodeSeconds / 3600) * 100) / 100, moved: done.moved, passes: done.passes, makespan: r.makespan };
  };
  const off = run({ maxNodesPerPass: 0 });
  const on = run(settings.consolidation);
  const onAnyAge = run({ ...settings.consolidation, maxTaskAgeSeconds: 0 });
  const onRepack = run({ ...settings.consolidation, repack: true });
  const saved = (x: ConsolidationRun) => `${(((off.nodeHours - x.nodeHours) / off.nodeHours) * 100).toFixed(1)}%`;
  const moved = (x: ConsolidationRun) => `${((x.moved / settings.jobs) * 100).toFixed(1)}%`;
  return {
    scenario: 'consolidation',
    settings,
    off,
    on,
    onAnyAge,
    onRepack,
    saved: { on: saved(on), onAnyAge: saved(onAnyAge), onRepack: saved(onRepack) },
    movedShare: { on: moved(on), onAnyAge: moved(onAnyAge), onRepack: moved(onRepack) },
  };
}
