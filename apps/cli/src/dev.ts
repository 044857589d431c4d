/**
 * `batch dev`: starts the local cluster and keeps it until Ctrl-C (exit 0), or until one of its
 * processes dies (exit 1). With `--demo` it submits a sample array job, shows its progress
 * live, prints a summary and stops (exit 0 if the job succeeded).
 *
 * It writes and selects the `dev` context (both tokens) so the other commands use the cluster
 * at once, and a restart updates it; a clean stop removes it and selects the context selected
 * before. A demo's cluster lives for one job and writes none.
 *
 * Progress goes to stderr; what a user copies (URL, tokens, the demo summary) to stdout.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobView } from '@batchapi/api';
import { BatchClient } from '@batchapi/sdk';
import { Presets, SingleBar } from 'cli-progress';
import { claimDataDir, LocalCluster, postgresDataDir } from './local-cluster';
import { countsLine } from './output';
import { cacheDir, forgetSavedContext, saveContext } from './settings';

/** The context `batch dev` writes and selects. */
export const DEV_CONTEXT = 'dev';

/** Flags of `batch dev`, parsed. */
export interface DevOptions {
  /** Run the sample job, then stop. @default false */
  demo?: boolean;
  /** Start from empty data (removes the data directory first). @default false */
  fresh?: boolean;
  /** @default `${XDG_CACHE_HOME:-~/.cache}/batchapi/dev/cluster`; for a demo a new directory per run, removed after */
  dataDir?: string;
  /** Local executors. @default 1 */
  executors?: number;
  /** Simulated nodes. @default 0 */
  simulatedNodes?: number;
  /** Show the services' logs. @default false */
  verbose?: boolean;
  /** Time limit of the whole demo, in seconds. @default 120 */
  timeout?: number;
  /** Run PostgreSQL as the history store (commander's `--no-history` sets it false). @default true */
  history?: boolean;
}

const say = (s: string) => process.stderr.write(`${s}\n`);
/** One Ctrl-C can arrive more than once (the terminal, npm and tools/batch.js each pass it on). */
const REPEAT_WINDOW_MS = 1500;

export async function dev(o: DevOptions): Promise<number> {
  const ownDir = !o.dataDir;
  const dataDir = o.dataDir ?? join(cacheDir(), 'dev', o.demo ? `demo-${Date.now()}-${process.pid}` : 'cluster');

  // Signals from the very start: a Ctrl-C while starting stops what was started.
  const interrupted = new AbortController();
  let cluster: LocalCluster | undefined;
  let firstSignalAt = 0;
  let forced = false;
  let wake: () => void = () => undefined;
  const woken = new Promise<void>((r) => {
    wake = r;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (!firstSignalAt) {
      firstSignalAt = Date.now();
      say(`• ${signal}: stopping the cluster (Ctrl-C again to kill it at once)`);
      interrupted.abort();
      void cluster?.stop(); // from now on, services that exit are stopping, not failing
      wake();
    } else if (Date.now() - firstSignalAt > REPEAT_WINDOW_MS && !forced) {
      forced = true;
      say('• killing the cluster');
      cluster?.kill();
    }
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  let failed: string | undefined;
  try {
    try {
      if (o.fresh) {
        for (const note of await claimDataDir(dataDir)) say(`• ${note}`); // never wipe the data of a cluster that runs
        rmSync(dataDir, { recursive: true, force: true });
        rmSync(postgresDataDir(dataDir), { recursive: true, force: true });
      }
      cluster = await LocalCluster.start({
        dataDir,
        executors: o.executors ?? 1,
        simulatedNodes: o.simulatedNodes ?? 0,
        verbose: o.verbose,
        history: o.history !== false,
        signal: interrupted.signal,
        onStep: (s) => say(`• ${s}`),
        onChildExit: (name, code, signal, tail) => {
          const last = tail.trim().split('\n').slice(-5).join('\n  ');
          if (!failed) say(`• ${name} exited (${signal ?? `code ${code}`})`);
          failed ??= `${name} exited (${signal ?? `code ${code}`}) while the cluster was running; the cluster was stopped${last ? `. The last lines it wrote on stderr:\n  ${last}` : ''}`;
          wake();
        },
      });
    } catch (err) {
      if (interrupted.signal.aborted) {
        say('• stopped before the cluster was ready');
        return forced ? 1 : 0;
      }
      say(`error: the local cluster did not start: ${(err as Error).message}`);
      return 1;
    }
    const context = { api: cluster.apiUrl, token: cluster.tenantToken, operatorToken: cluster.operatorToken };
    // A demo's cluster lives for one job: the other commands keep using what they used.
    const saved = o.demo ? undefined : saveContext(DEV_CONTEXT, context);
    process.stdout.write(
      'BatchAPI local cluster is up.\n' +
        `  API:            ${cluster.apiUrl}\n` +
        `  console:        ${cluster.apiUrl}/console/   (sign in with the tenant token; docs/console.md)\n` +
        `  tenant token:   ${cluster.tenantToken}   (tenant "default")\n` +
        `  operator token: ${cluster.operatorToken}\n` +
        `  data:           ${dataDir}\n` +
        `  history:        ${cluster.historyUrl ? `${cluster.historyUrl} (finished jobs move here a minute after they end)` : `off (${o.history === false ? '--no-history' : 'PostgreSQL did not start, see above'}): finished jobs stay in etcd`}\n` +
        `  context:        ${saved ? `${DEV_CONTEXT}, selected for the other batch commands (${saved.path})` : '(none for a demo)'}\n\n`,
    );
    let code = 0;
    try {
      if (o.demo) {
        code = await Promise.race([runDemo(cluster, o.timeout ?? 120), woken.then(() => 1)]);
      } else {
        say('• Ctrl-C stops the cluster');
        await woken;
      }
    } finally {
      say('• stopping the cluster');
      await cluster.stop();
      if (saved) forgetSavedContext(DEV_CONTEXT, context, saved.previous);
      say('• stopped');
    }
    if (failed) {
      say(`error: ${failed}`);
      return 1;
    }
    return forced ? 1 : code;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    if (o.demo && ownDir) for (const d of [dataDir, postgresDataDir(dataDir)]) rmSync(d, { recursive: true, force: true });
  }
}

/** The four numbers the demo's progress shows: done well, done badly, under way, waiting. */
function progressCounts(j: JobView): Record<'succeeded' | 'failed' | 'running' | 'pending', number> {
  const c = j.taskCounts;
  return { succeeded: c.succeeded, failed: c.failed + c.cancelled, running: c.running + c.bound, pending: c.pending };
}

/** The demo: one array job from submit to summary, bounded by `timeoutSeconds`. */
async function runDemo(cluster: LocalCluster, timeoutSeconds: number): Promise<number> {
  const client = new BatchClient({ url: cluster.apiUrl, token: cluster.tenantToken });
  const tasks = 8;
  const started = Date.now();
  let last: JobView | undefined;
  let bar: SingleBar | undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new AbortController();
  const timedOut = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      deadline.abort();
      bar?.stop();
      bar = undefined;
      say(
        `error: the demo did not finish within ${timeoutSeconds} s${last ? `: job ${last.id} is ${last.phase} (${countsLine(last)})` : ''}; \`batch dev --verbose --demo\` shows the services' logs`,
      );
      resolve(1);
    }, timeoutSeconds * 1000);
  });
  const demo = async (): Promise<number> => {
    const job = await client.submitJob({
      name: 'demo-array',
      tasks,
      resources: { cpu: '250m', memory: '64Mi' },
      command: ['sh', '-c', 'echo "task $BATCH_TASK_INDEX of job $BATCH_JOB_ID on $BATCH_NODE (attempt $BATCH_ATTEMPT)"; sleep 1'],
    });
    last = job;
    say(`• submitted job ${job.id}: ${tasks} tasks of 250m CPU, 64Mi each`);
    if (process.stderr.isTTY) {
      bar = new SingleBar(
        {
          format: '  {bar} {value}/{total} done | {succeeded} succeeded, {failed} failed, {running} running, {pending} pending',
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: false,
        },
        Presets.shades_classic,
      );
      bar.start(tasks, 0, progressCounts(job));
    }
    let final: JobView;
    try {
      final = await client.waitForJob(job.id, {
        intervalMs: 200,
        signal: deadline.signal,
        onUpdate: (j) => {
          last = j;
          const c = progressCounts(j);
          if (bar) bar.update(c.succeeded + c.failed, c);
          else say(`  ${j.phase}: ${c.succeeded} succeeded, ${c.failed} failed, ${c.running} running, ${c.pending} pending`);
        },
      });
    } finally {
      bar?.stop();
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    let log = '';
    try {
      for await (const chunk of client.logs(job.id, 0)) log += chunk;
    } catch (err) {
      log = `(could not read it: ${(err as Error).message})`;
    }
    const c = final.taskCounts;
    const lines = log.trimEnd().split('\n').slice(0, 5);
    process.stdout.write(
      `\nDemo job ${final.id}: ${final.phase} in ${seconds} s\n` +
        `  tasks:    ${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ${c.running} running, ${c.bound} bound, ${c.pending} pending (of ${final.tasks})\n` +
        (final.reason ? `  reason:   ${final.reason.code}: ${final.reason.message}\n` : '') +
        `  trace id: ${final.traceId ?? '(none: tracing is off; set OTEL_EXPORTER_OTLP_ENDPOINT to export traces)'}\n` +
        `  task 0 stdout:\n${lines.map((l) => `    ${l}`).join('\n')}\n\n`,
    );
    return final.phase === 'Succeeded' ? 0 : 1;
  };
  try {
    return await Promise.race([demo(), timedOut]);
  } catch (err) {
    if (deadline.signal.aborted) return 1; // the timeout already said why
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
