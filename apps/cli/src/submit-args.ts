/** Turns `batch submit` flags into a submit request. Pure, so its table tests need no server. */
import type { SubmitJobRequest } from '@batchapi/api';

/** Flags of `batch submit`, as commander hands them over. */
export interface SubmitFlags {
  name?: string;
  tasks?: string;
  cpu?: string;
  memory?: string;
  gpu?: string;
  queue?: string;
  priority?: string;
  env?: string[];
  label?: string[];
  selector?: string[];
  gang?: boolean;
}

/** A usage error: the CLI prints it and exits 2. */
export class UsageError extends Error {}

function pairs(list: string[] | undefined, flag: string): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got "${item}"`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`${flag} takes a whole number, got "${v}"`);
  return Number(v);
}

export function submitRequest(command: string[], f: SubmitFlags): SubmitJobRequest {
  if (command.length === 0) throw new UsageError('give the command after --, e.g. batch submit -- echo hello');
  const resources: Record<string, string | number> = {};
  if (f.cpu !== undefined) resources.cpu = f.cpu;
  if (f.memory !== undefined) resources.memory = f.memory;
  if (f.gpu !== undefined) resources.gpu = Number.isNaN(Number(f.gpu)) ? f.gpu : Number(f.gpu);
  const req: SubmitJobRequest = { command };
  if (f.name) req.name = f.name;
  const tasks = int(f.tasks, '--tasks');
  if (tasks !== undefined) req.tasks = tasks;
  const priority = int(f.priority, '--priority');
  if (priority !== undefined) req.priority = priority;
  if (Object.keys(resources).length) req.resources = resources;
  if (f.queue) req.queue = f.queue;
  const env = pairs(f.env, '--env');
  if (env) req.env = env;
  const labels = pairs(f.label, '--label');
  if (labels) req.labels = labels;
  const selector = pairs(f.selector, '--selector');
  if (selector) req.selector = selector;
  if (f.gang) req.gang = true;
  return req;
}
