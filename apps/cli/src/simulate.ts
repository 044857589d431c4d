/** `batch simulate`: the contract of SIMULATOR.md — progress on stderr, the result as the last stdout line. */
import { readFileSync } from 'node:fs';
import { InputError, parseNodes, parseQueues, parseWorkload, simulate } from '@batchapi/simulation';
import type { PlacementPolicy } from '@batchapi/scheduling';

export interface SimulateFlags {
  nodes: string;
  workload: string;
  queues?: string;
  policy?: string;
}

export function runSimulate(f: SimulateFlags): number {
  try {
    const read = (p: string) => {
      try {
        return readFileSync(p, 'utf8');
      } catch (err) {
        throw new InputError(p, undefined, '(file)', (err as Error).message);
      }
    };
    const nodes = parseNodes(read(f.nodes), f.nodes);
    const workload = parseWorkload(read(f.workload), f.workload);
    const queues = f.queues ? parseQueues(read(f.queues), f.queues) : undefined;
    if (f.policy && f.policy !== 'bin-pack' && f.policy !== 'first-fit') throw new InputError('--policy', undefined, 'policy', 'must be bin-pack or first-fit');
    process.stderr.write(`simulate: ${nodes.length} nodes, ${workload.length} submissions (${workload.reduce((n, s) => n + s.tasks, 0)} tasks)\n`);
    const result = simulate(nodes, workload, {
      queues,
      policy: f.policy as PlacementPolicy | undefined,
      onProgress: (p) => process.stderr.write(`simulate: t=${p.time.toFixed(1)}s placed=${p.placed} pending=${p.pending} running=${p.running}\n`),
      onReject: (s, why) => process.stderr.write(`simulate: rejected ${f.workload}:${s.line} (${s.name}): ${why}\n`),
    });
    process.stderr.write(`simulate: done in ${result.wallSeconds} s\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
