/**
 * `bench alibaba`: replays the Alibaba GPU cluster trace (2023, "openb": 1,523 nodes, 6,212
 * GPUs of several models, pods with fractional GPU requests) through `simulate` — the live
 * placement code on a virtual clock. Pods arrive in trace order and stay (as the trace's
 * authors replay it): the figures are how many fit and how much of the GPUs they hold when
 * requests stop fitting, for bin packing against first fit. Reads `../shared/data`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPU_MILLI } from '@batchapi/api';
import { DEFAULT_SCORES, type NodeSnapshot, packingScores, requestShapes } from '@batchapi/scheduling';
import { type SimulationOptions, type Submission, simulate } from '@batchapi/simulation';
import { progress } from './rng';

/** Nodes of `openb_node_list_all_node.csv` (sn,cpu_milli,memory_mib,gpu,model). */
export function traceNodes(csv: string): NodeSnapshot[] {
  return csv
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [sn, cpu, mem, gpu, model] = line.split(',');
      const gpus = Number(gpu);
      return {
        name: sn,
        capacity: { cpu: Number(cpu), memory: Number(mem) * 2 ** 20, ...(gpus ? { gpu: gpus * GPU_MILLI } : {}) },
        used: {},
        devices: {},
        gpuCount: gpus,
        labels: (model?.trim() ? { 'gpu.model': model.trim() } : {}) as Record<string, string>,
        taints: [],
      };
    });
}

/**
 * Pods of an `openb_pod_list_*.csv` as submissions: one task each, submitted in creation order
 * (seconds from the first). `num_gpu` devices of `gpu_milli` each: a share of one device below
 * 1000, whole devices otherwise. With `keep`, pods never end — the trace's own way to measure
 * how much of the cluster a policy can fill before requests stop fitting (fragmentation);
 * otherwise each runs as long as it did in the trace.
 */
export function tracePods(csv: string, keep = true): Submission[] {
  const rows = csv
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(','));
  const t0 = Math.min(...rows.map((r) => Number(r[8])));
  return rows.map((r, i) => {
    const [name, cpu, mem, numGpu, gpuMilli, spec, , , created, deleted, scheduled] = r;
    const gpu = Number(numGpu) === 0 ? 0 : Number(gpuMilli) < GPU_MILLI ? Number(gpuMilli) : Number(numGpu) * GPU_MILLI;
    const start = Number(scheduled) || Number(created);
    return {
      name,
      tenant: 'default',
      queue: 'default',
      submitAt: Number(created) - t0,
      tasks: 1,
      resources: { cpu: Number(cpu), memory: Number(mem) * 2 ** 20, ...(gpu ? { gpu } : {}) },
      duration: keep ? null : Math.max(1, Number(deleted) - start),
      priority: 0,
      gang: false,
      selector: (spec ? { 'gpu.model': spec.split('|')[0] } : {}) as Record<string, string>,
      tolerations: [],
      line: i + 2,
    };
  });
}

export function benchAlibaba(o: { data: string; trace: string }): Record<string, unknown> {
  const dir = join(o.data, 'alibaba_gpu_v2023');
  const nodesFile = join(dir, 'openb_node_list_all_node.csv');
  const podsFile = join(dir, `openb_pod_list_${o.trace}.csv`);
  if (!existsSync(nodesFile) || !existsSync(podsFile)) {
    progress(`alibaba: ${podsFile} not found; nothing to replay`);
    return { bench: 'alibaba', skipped: `no trace at ${dir}` };
  }
  const nodes = traceNodes(readFileSync(nodesFile, 'utf8'));
  const pods = tracePods(readFileSync(podsFile, 'utf8'));
  const gpus = nodes.reduce((n, x) => n + x.gpuCount, 0);
  progress(`alibaba: ${nodes.length} nodes (${gpus} GPUs), ${pods.length} pods of trace "${o.trace}"`);
  const result: Record<string, unknown> = { bench: 'alibaba', trace: o.trace, nodes: nodes.length, gpus, pods: pods.length };
  // The request shapes of the trace, by frequency: the expected workload fragmentation is measured against.
  const shapes = requestShapes(pods.map((p) => ({ resources: p.resources, count: p.tasks })));
  const policies: Array<[string, SimulationOptions]> = [
    // the live default: fragmentation gradient against the request mix pending and running
    ['bin-pack', { policy: 'bin-pack' }],
    // the same against the whole trace's mix, known in advance (as the FGD paper assumes)
    ['bin-pack-trace-mix', { policy: 'bin-pack', scores: packingScores(shapes) }],
    // the previous default: most-allocated with a GPU-fragmentation term
    ['most-allocated', { policy: 'bin-pack', scores: DEFAULT_SCORES }],
    ['first-fit', { policy: 'first-fit' }],
  ];
  for (const [policy, opts] of policies) {
    const r = simulate(nodes, pods, {
      ...opts,
      onProgress: (p) => progress(`alibaba(${policy}): t=${Math.round(p.time)} s placed=${p.placed} pending=${p.pending}`),
      progressEvery: 4000,
    });
    result[policy] = {
      placed: r.placed,
      pending: r.pending,
      completed: r.completed,
      nodesUsed: r.nodesUsed,
      makespanSeconds: r.makespan,
      allocation: r.allocation,
      wallSeconds: r.wallSeconds,
      decisionsPerSecond: r.decisionsPerSecond,
    };
  }
  return result;
}
