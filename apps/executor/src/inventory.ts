/** What this node has: CPU and memory from the OS (or overrides), GPUs from `nvidia-smi`. */
import { execFile } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { type GpuDevice, GPU_MILLI, type NodeRecord, parseCpu, parseMemory } from '@batchapi/api';
import type { ExecutorConfig } from './config';

/** How long `detectGpus` waits for `nvidia-smi`, in milliseconds. */
export const NVIDIA_SMI_TIMEOUT_MS = 10_000;

/**
 * Lists GPUs with `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`.
 * No binary, a failure, no output or no answer within `timeoutMs` means no GPUs. Asynchronous:
 * nvidia-smi can take seconds on a GPU node (no persistence daemon, a GPU that fell off the bus),
 * and the executor reads it under its process lease, whose renewals must go on meanwhile.
 * @param timeoutMs @default NVIDIA_SMI_TIMEOUT_MS (10,000 ms)
 */
export function detectGpus(nvidiaSmi: string, timeoutMs = NVIDIA_SMI_TIMEOUT_MS): Promise<GpuDevice[]> {
  return new Promise((resolve) => {
    try {
      execFile(
        nvidiaSmi,
        ['--query-gpu=index,name,memory.total,uuid', '--format=csv,noheader,nounits'],
        { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' },
        (err, stdout) => resolve(err ? [] : parseGpus(stdout)),
      );
    } catch {
      resolve([]); // e.g. an empty binary name
    }
  });
}

/** The GPUs of `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits` output. */
function parseGpus(stdout: string): GpuDevice[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => l.split(',').map((c) => c.trim()))
    .filter((c) => c.length >= 4 && /^\d+$/.test(c[0]))
    .map((c) => ({ index: Number(c[0]), model: c[1], memoryMiB: Number(c[2]) || 0, uuid: c[3] }));
}

/** The node record this executor registers under its lease, with the GPUs `detectGpus` found. */
export function nodeRecord(config: ExecutorConfig, url: string, now: number, gpus: GpuDevice[]): NodeRecord {
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
