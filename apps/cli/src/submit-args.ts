/**
 * `batch submit`: its flags, and how they become a `SubmitJobRequest`. Pure (no I/O), so table
 * tests cover the whole path from argv to request without a server.
 */
import type { ResubmitChanges, SubmitJobRequest } from '@batchapi/api';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { load } from 'js-yaml';
import { OUTPUT_FORMATS, type OutputFormat } from './output';
import { readRequirementsFile } from './python-requirements';

/** Flags of `batch submit`, as commander hands them over. */
export interface SubmitFlags {
  name?: string;
  tasks?: string;
  /** Most tasks bound or running at once (Slurm's `%N`). */
  maxRunning?: string;
  cpu?: string;
  memory?: string;
  gpu?: string;
  queue?: string;
  priority?: string;
  env?: string[];
  label?: string[];
  selector?: string[];
  gang?: boolean;
  spread?: boolean;
  /** A topology level every task must share a domain of (e.g. `rack`). */
  topologyRequired?: string;
  /** A topology level to pack the tasks into as few domains of as fit. */
  topologyPreferred?: string;
  attempts?: string;
  timeout?: string;
  /** A YAML or JSON file with the request; flags and a command after `--` override it. */
  file?: string;
  /** A directory packed, uploaded (once per digest) and unpacked read-only as every task's cwd. */
  workingDir?: string;
  /** Largest `workingDir` packed, in MiB of tar. @default 100 */
  workingDirMaxMib?: number;
  /** A requirements (or lock) file: the job's `python.requirements`, installed into a venv on the node. */
  pythonRequirements?: string;
  /** Mutexes each running task holds (`locks`). */
  lock?: string[];
  /** Semaphore units each running task holds, `NAME=N` (`limits`). */
  limit?: string[];
}

/** A usage error: the CLI prints it and exits 2. */
export class UsageError extends Error {}

/** `-o table|wide|json|yaml` of every command that prints. */
export const outputOption = () =>
  new Option('-o, --output <format>', "table, wide (more columns), json or yaml (the API's answer)").choices([...OUTPUT_FORMATS]).default('table');

/** Commander parser of a whole number ≥ `min`. */
export const wholeNumber =
  (min = 0) =>
  (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`must be a whole number${min ? ` ≥ ${min}` : ''}.`);
    return Number(v);
  };

/** Most `--task` flags of one `batch cancel`. */
export const MAX_CANCEL_TASK_FLAGS = 1000;

/** Commander's collector of a repeatable `--task <index>` (a task index, at most `MAX_CANCEL_TASK_FLAGS` of them). */
export function collectTaskIndex(v: string, previous: number[]): number[] {
  const index = wholeNumber(0)(v);
  if (previous.length >= MAX_CANCEL_TASK_FLAGS) throw new InvalidArgumentError(`at most ${MAX_CANCEL_TASK_FLAGS} tasks; cancel the whole job instead.`);
  return previous.includes(index) ? previous : [...previous, index];
}

/** Adds the arguments and options of `batch submit` to `cmd`. */
export function defineSubmit(cmd: Command): Command {
  return cmd
    .description('submit a job: batch submit [options] -- <command> [args...]')
    .argument('[command...]', 'the program and its arguments (after --; no shell: use sh -c for one)')
    .option('-f, --file <path>', 'the job as YAML or JSON (the body of POST /v1/jobs; - for stdin); flags and a command after -- override it')
    .option('--name <name>', 'job name (letters, digits, "-", "_", ".")')
    .option('--tasks <n>', 'number of tasks (an array job; each gets BATCH_TASK_INDEX)')
    .option('--max-running <n>', "most tasks running at once, the others wait (Slurm's --array=…%N; default unlimited)")
    .option('--cpu <q>', 'cores per task, e.g. 500m or 2 (default 1)')
    .option('--memory <q>', 'memory per task, e.g. 512Mi or 2Gi (default 256Mi)')
    .option('--gpu <n>', 'GPUs per task (a fraction below 1 shares one)')
    .option('--queue <name>', 'queue (default "default")')
    .option('--priority <n>', 'higher runs first, -1000 to 1000 (default 0)')
    .option('--env <KEY=VALUE...>', 'environment variable of every task (repeatable)')
    .option('--label <KEY=VALUE...>', 'label of the job (repeatable)')
    .option('--selector <KEY=VALUE...>', 'node label the tasks require (repeatable)')
    .option('--gang', 'start all tasks together or none')
    .option('--spread', 'prefer the emptiest nodes instead of packing')
    .option('--topology-required <level>', 'every task in one domain of this topology level (e.g. rack), or wait')
    .option('--topology-preferred <level>', 'pack the tasks into as few domains of this topology level as fit')
    .option('--lock <name...>', 'a mutex each running task holds alone, e.g. dataset/lidar (repeatable; global/… for shared ones)')
    .option('--limit <NAME=N...>', 'units of a semaphore each running task holds, e.g. db/warehouse-conn=1 (repeatable; see batch semaphores)')
    .option('--attempts <n>', 'attempts per task in all, retries included (default 1: no retry)')
    .option('--timeout <seconds>', 'deadline of each attempt')
    .option(
      '--working-dir <dir>',
      "a directory of code each task runs in (its cwd, read-only): packed (less .git/, .gitignore's and .batchignore's), uploaded once per content",
    )
    .option('--working-dir-max-mib <n>', "largest --working-dir, in MiB of its packed tar (default 100, the API's bound)", (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError('must be a positive number of MiB.');
      return n;
    })
    .option(
      '--python-requirements <file>',
      'a requirements (or lock) file: each task runs with python3 from a venv the node builds with them, once per content (pip from its own index)',
    )
    .option('--idempotency-key <key>', 'retrying with the same key returns the same job (default: a new key)')
    .option('--wait', 'wait until the job ends; exit 0 only if it succeeded')
    .addOption(outputOption());
}

/** `KEY=VALUE` items of a repeatable flag as a map; undefined when none. */
export function pairs(list: string[] | undefined, flag: string): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got "${item}"`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** `--cpu`, `--memory` and `--gpu` as resources (only those given). */
function resourceFlags(f: { cpu?: string; memory?: string; gpu?: string }): Record<string, string | number> {
  const resources: Record<string, string | number> = {};
  if (f.cpu !== undefined) resources.cpu = f.cpu;
  if (f.memory !== undefined) resources.memory = f.memory;
  if (f.gpu !== undefined) {
    if (f.gpu === '' || Number.isNaN(Number(f.gpu))) throw new UsageError(`--gpu takes a number of GPUs, got "${f.gpu}"`);
    resources.gpu = Number(f.gpu);
  }
  return resources;
}

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`${flag} takes a whole number, got "${v}"`);
  return Number(v);
}

/** The request of `batch submit <flags> -- <command>`. Values the API checks (ranges, quantities) are left to it. */
export function submitRequest(command: string[], f: SubmitFlags, base?: SubmitJobRequest): SubmitJobRequest {
  if (command.length === 0 && !base?.command?.length) throw new UsageError('give the command after --, e.g. batch submit -- echo hello (or a file with -f)');
  const req: SubmitJobRequest = { ...base, command: command.length ? command : base!.command };
  if (f.name) req.name = f.name;
  const tasks = int(f.tasks, '--tasks');
  if (tasks !== undefined) req.tasks = tasks;
  const maxRunning = int(f.maxRunning, '--max-running');
  if (maxRunning !== undefined) req.maxRunning = maxRunning;
  const resources = { ...base?.resources, ...resourceFlags(f) };
  if (Object.keys(resources).length) req.resources = resources;
  if (f.queue) req.queue = f.queue;
  const priority = int(f.priority, '--priority');
  if (priority !== undefined) req.priority = priority;
  const env = pairs(f.env, '--env');
  if (env) req.env = env;
  const labels = pairs(f.label, '--label');
  if (labels) req.labels = labels;
  const selector = pairs(f.selector, '--selector');
  if (selector) req.selector = selector;
  if (f.gang) req.gang = true;
  if (f.spread) req.spread = true;
  if (f.topologyRequired !== undefined) req.topology = { required: f.topologyRequired };
  if (f.topologyPreferred !== undefined) req.topology = { ...req.topology, preferred: f.topologyPreferred };
  if (f.lock?.length) req.locks = [...(base?.locks ?? []), ...f.lock];
  const limits = pairs(f.limit, '--limit');
  if (limits) {
    req.limits = { ...base?.limits };
    for (const [name, units] of Object.entries(limits)) req.limits[name] = int(units, `--limit ${name}`)!;
  }
  const attempts = int(f.attempts, '--attempts');
  if (attempts !== undefined) req.retry = { maxAttempts: attempts };
  const timeout = int(f.timeout, '--timeout');
  if (timeout !== undefined) req.timeoutSeconds = timeout;
  return req;
}

/** What `batch submit` will do, from its argv (the words after `submit`). */
export interface SubmitInvocation {
  request: SubmitJobRequest;
  idempotencyKey?: string;
  wait: boolean;
  output: OutputFormat;
}

/** Everything commander hands a submit action, as an invocation. */
export function submitInvocation(command: string[], f: SubmitFlags & { idempotencyKey?: string; wait?: boolean; output?: string }): SubmitInvocation {
  const request = submitRequest(command, f, f.file ? readRequestFile<SubmitJobRequest>(f.file) : undefined);
  if (f.pythonRequirements !== undefined) request.python = { requirements: readRequirementsFile(f.pythonRequirements) };
  return {
    request,
    idempotencyKey: f.idempotencyKey,
    wait: !!f.wait,
    output: OUTPUT_FORMATS.includes(f.output as OutputFormat) ? (f.output as OutputFormat) : 'table',
  };
}

/** Reads a request from a YAML or JSON file (JSON is YAML too); `-` is stdin. Not an object → `UsageError`. */
export function readRequestFile<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = load(text);
  } catch (err) {
    throw new UsageError(`${path} is not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${path} must hold an object (the request body)`);
  return v as T;
}

/** Parses `batch submit` argv with the real command definition; bad usage throws `UsageError`. */
export function parseSubmitArgv(argv: string[]): SubmitInvocation {
  const cmd = defineSubmit(new Command('submit'))
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new UsageError(err.message.replace(/^error: /, ''));
    throw err;
  }
  return submitInvocation(cmd.processedArgs[0] as string[], cmd.opts());
}

/** `batch resubmit`'s flags: what to change (see `ResubmitChanges`). */
export interface ResubmitFlags {
  queue?: string;
  priority?: string;
  cpu?: string;
  memory?: string;
  gpu?: string;
  env?: string[];
  label?: string[];
}

/** The body of `POST /v1/jobs/{id}/resubmit` from `batch resubmit`'s flags: only what they change. */
export function resubmitChanges(f: ResubmitFlags): ResubmitChanges {
  const changes: ResubmitChanges = {};
  if (f.queue) changes.queue = f.queue;
  const priority = int(f.priority, '--priority');
  if (priority !== undefined) changes.priority = priority;
  const resources = resourceFlags(f);
  if (Object.keys(resources).length) changes.resources = resources;
  const env = pairs(f.env, '--env');
  if (env) changes.env = env;
  const labels = pairs(f.label, '--label');
  if (labels) changes.labels = labels;
  return changes;
}
