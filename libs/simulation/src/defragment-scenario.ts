/**
 * The defragmentation scenario (`batch simulate --scenario defragment`): GPU nodes kept busy by a
 * steady stream of 1-GPU tasks have their free GPUs scattered (1–3 per node), and a few 4-GPU jobs
 * arriving among them wait for a node with 4 free at once — they starve while 1-GPU work takes each
 * GPU that frees. With defragmentation (`defragment`, the live `BATCH_DEFRAGMENT_MAX_MOVES`: a pass
 * every 10 s while work waits, 60 s exempt time, tasks younger than 600 s only) a few 1-GPU tasks
 * move so that one node has the room. Measured: the 4-GPU jobs' wait with it off and on, the tasks
 * moved (each restarts: the cost) and the 1-GPU jobs' mean wait. With `gangs` (the `defragment-gang`
 * scenario), gangs of 2 × 4 GPUs arrive in the stream too: they need two nodes with 4 free at once,
 * which chance almost never gives; a pass makes the room on two nodes in one go.
 */
import { parseNodes, parseWorkload } from './inputs';
import { mulberry32 } from './random';
import { type SimDefragment, simulate } from './simulate';

/** Settings of the defragmentation scenario. */
export interface DefragmentScenarioOptions {
  /** Nodes of 8 GPUs, 64 cores. @default 8 */
  nodes?: number;
  /** One-GPU jobs, arriving at seeded random times over `arrivalSeconds`, each 5–15 minutes (680 over 2 h on 64 GPUs: about 90% loaded). @default 680 */
  smallJobs?: number;
  /** @default 7200 */
  arrivalSeconds?: number;
  /** 4-GPU jobs, one every `arrivalSeconds / (bigJobs + 1)` seconds, 20 minutes each. @default 4 */
  bigJobs?: number;
  /** Gangs of 2 × 4 GPUs (all or nothing), one every `arrivalSeconds / (gangs + 1)` seconds (a quarter gap after the 4-GPU jobs'), 20 minutes each. @default 0 */
  gangs?: number;
  /** Seed of the arrival times and durations. @default 7 */
  seed?: number;
  /** Defragmentation settings of the run with it on. @default the live defaults */
  defragment?: SimDefragment;
}

/** One run's figures. */
export interface DefragmentRun {
  /** Seconds each 4-GPU job waited for its start, in submit order (null: never started). */
  bigWaits: Array<number | null>;
  /** Seconds each gang waited for its start (both members at once), in submit order (null: never started). */
  gangWaits: Array<number | null>;
  /** Mean seconds a 1-GPU job waited for its first start. */
  smallMeanWait: number;
  /** Tasks moved (stopped and placed again). */
  moved: number;
  /** Waiting jobs defragmentation gave a node. */
  served: number;
}

export interface DefragmentScenarioResult {
  scenario: 'defragment';
  settings: Required<DefragmentScenarioOptions>;
  off: DefragmentRun;
  on: DefragmentRun;
}

/** The fleet and the stream; the runs differ only in `defragment`. */
export function defragmentScenario(o: DefragmentScenarioOptions = {}): DefragmentScenarioResult {
  const settings = {
    nodes: o.nodes ?? 8,
    smallJobs: o.smallJobs ?? 680,
    arrivalSeconds: o.arrivalSeconds ?? 7200,
    bigJobs: o.bigJobs ?? 4,
    gangs: o.gangs ?? 0,
    seed: o.seed ?? 7,
    defragment: o.defragment ?? {},
  };
  const rand = mulberry32(settings.seed);
  const nodes = parseNodes(
    Array.from({ length: settings.nodes }, (_, i) =>
      JSON.stringify({ name: `g${String(i).padStart(2, '0')}`, capacity: { cpu: '64', memory: '512Gi', gpu: '8' } }),
    ).join('\n'),
  );
  const lines: string[] = [];
  for (let i = 0; i < settings.smallJobs; i++)
    lines.push(
      JSON.stringify({
        name: `s${i}`,
        submitAt: Math.round(rand() * settings.arrivalSeconds),
        resources: { cpu: '1', memory: '8Gi', gpu: '1' },
        duration: 300 + Math.round(rand() * 600),
      }),
    );
  const gap = settings.arrivalSeconds / (settings.bigJobs + 1);
  for (let i = 0; i < settings.bigJobs; i++)
    lines.push(JSON.stringify({ name: `big${i}`, submitAt: Math.round(gap * (i + 1)), resources: { cpu: '4', memory: '32Gi', gpu: '4' }, duration: 1200 }));
  const gangGap = settings.arrivalSeconds / (settings.gangs + 1);
  for (let i = 0; i < settings.gangs; i++)
    lines.push(
      JSON.stringify({
        name: `gang${i}`,
        submitAt: Math.round(gangGap * (i + 1.25)),
        tasks: 2,
        gang: true,
        resources: { cpu: '4', memory: '32Gi', gpu: '4' },
        duration: 1200,
      }),
    );
  const work = parseWorkload(lines.join('\n'));
  const run = (d?: SimDefragment): DefragmentRun => {
    const started = new Map<string, number>();
    const r = simulate(nodes, work, {
      ...(d ? { defragment: d } : {}),
      onStart: (t, jobId) => {
        if (!started.has(jobId)) started.set(jobId, t);
      },
    });
    const submitted = new Map(work.map((s) => [`${s.line}:${s.name}`, s]));
    const waits = (prefix: string) =>
      [...submitted].filter(([, s]) => s.name.startsWith(prefix)).map(([id, s]) => (started.has(id) ? started.get(id)! - s.submitAt : null));
    const small = waits('s').filter((w): w is number => w !== null);
    return {
      bigWaits: waits('big'),
      gangWaits: waits('gang'),
      smallMeanWait: Math.round(small.reduce((a, b) => a + b, 0) / Math.max(1, small.length)),
      moved: r.defragment?.moved ?? 0,
      served: r.defragment?.served ?? 0,
    };
  };
  return { scenario: 'defragment', settings, off: run(), on: run(settings.defragment) };
}
