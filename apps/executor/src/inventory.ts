/** What this node has: CPU and memory from the OS (or overrides), GPUs from `nvidia-smi`. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { type GpuDevice, GPU_MILLI, type NodeRecord, parseCpu, parseMemory } from '@batchapi/api';
import type { ExecutorConfig } from './config';

/**
 * Lists GPUs with `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`.
 * No binary, a failure or no output means no GPUs.
 */
export function detectGpus(nvidiaSmi: string): GpuDevice[] {
  let r: SpawnSyncReturns<string>;
  try {
    r = spawnSync(nvidiaSmi, ['--query-gpu=index,name,memory.total,uuid', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10_000 });
  } catch {
    return []; // e.g. an empty binary name
  }
  if (r.error || r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => l.split(',').map((c) => c.trim()))
    .filter((c) => c.length >= 4 && /^\d+$/.test(c[0]))
    .map((c) => ({ index: Number(c[0]), model: c[1], memoryMiB: Number(c[2]) || 0, uuid: c[3] }));
}

/** The node record this executor registers under its lease. */
export function nodeRecord(config: ExecutorConfig, url: string, now: number): NodeRecord {
  const gpus = detectGpus(config.nvidiaSmi);
  const labels = { ...config.labels };
  if (gpus.length > 0) labels['gpu.model'] ??= gpus[0].model;
  return {
    name: config.nodeName,
    capacity: {
      cpu: config.cpu ? parseCpu(config.cpu, 'BATCH_NODE_CPU') : cpus().length * 1000,
      memory: config.memory ? parseMemory(config.memory, 'BATCH_NODE_MEMORY') : totalmem(),
      ...(gpus.length > 0 ? { gpu: gpus.length * GPU_MILLI } : {}),
    },
    labels,
    taints: [],
    gpus,
    url,
    registeredAt: now,
  };
}
