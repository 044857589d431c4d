/** What this node has: CPU and memory from the OS (or overrides), GPUs from `nvidia-smi`. */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { type GpuDevice, GPU_MILLI, type NodeRecord, parseCpu, parseMemory } from '@batchapi/api';
import type { ExecutorConfig } from './config';
import { killGroup } from './task-process';

/** How long `detectGpus` waits for `nvidia-smi`, in milliseconds. */
export const NVIDIA_SMI_TIMEOUT_MS = 10_000;

/** Most bytes of `nvidia-smi` output read (a line is ~60 bytes: room for thousands of GPUs). */
const NVIDIA_SMI_MAX_BYTES = 1024 * 1024;

/**
 * Lists GPUs with `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`.
 * No binary, a failure (exit status other than 0, output over 1 MiB) or no answer within
 * `timeoutMs` means no GPUs. Asynchronous: nvidia-smi can take seconds on a GPU node (no
 * persistence daemon) and hang on a GPU that fell off the bus, and the executor reads it under its
 * process lease, whose renewals must go on meanwhile. At the timeout its process group is killed
 * and the answer is no GPUs at once, even when a process of it cannot die (uninterruptible sleep
 * in the driver): the executor is not left waiting for it to exit.
 * @param nvidiaSmi - the binary (on PATH unless a path; `BATCH_NVIDIA_SMI`)
 * @param timeoutMs - how long to wait for its answer, in milliseconds (> 0). @default NVIDIA_SMI_TIMEOUT_MS (10,000)
 */
export function detectGpus(nvidiaSmi: string, timeoutMs = NVIDIA_SMI_TIMEOUT_MS): Promise<GpuDevice[]> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      // Its own process group: a wrapper script's children are killed with it at the timeout.
      child = spawn(nvidiaSmi, ['--query-gpu=index,name,memory.total,uuid', '--format=csv,noheader,nounits'], {
        detached: true,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      resolve([]); // e.g. an empty binary name
      return;
    }
    let out = '';
    let settled = false;
    const settle = (gpus: GpuDevice[]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(gpus);
    };
    const timer = setTimeout(() => {
      killGroup(child.pid!);
      child.stdout?.destroy();
      child.unref();
      settle([]);
    }, timeoutMs);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (out.length > NVIDIA_SMI_MAX_BYTES) {
        child.kill('SIGKILL');
        settle([]);
      }
    });
    child.on('error', () => settle([])); // not found, not executable
    child.on('close', (code) => settle(code === 0 ? parseGpus(out) : []));
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
