/**
 * `batch dev`: starts the local cluster and keeps it until Ctrl-C (exit 0), or until one of its
 * processes dies (exit 1). With `--demo` it submits a sample workflow (`demo-workflow.ts`), shows
 * its DAG progress live and the console's link to it, prints a summary and stops (exit 0 if the
 * workflow succeeded with the right total), or with `--keep` stays up until Ctrl-C.
 *
 * It writes and selects the `dev` context (both tokens) so the other commands use the cluster
 * at once, and a restart updates it; a clean stop removes it and selects the context selected
 * before. A demo's cluster lives for one workflow and writes none.
 *
 * Progress goes to stderr; what a user copies (URL, tokens, the demo summary) to stdout.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowView } from '@batchapi/api';
import { BatchClient } from '@batchapi/sdk';
import { dagLine, DEMO_SHARDS, demoTotal, demoWorkflow } from './demo-workflow';
import { claimDataDir, LocalCluster, postgresDataDir } from './local-cluster';
import { cacheDir, forgetSavedContext, saveContext } from './settings';

/** The context `batch dev` writes and selects. */
export const DEV_CONTEXT = 'dev';

/** Flags of `batch dev`, parsed. */
export interface DevOptions {
  /** Run the sample workflow, then stop. @default false */
  demo?: boolean;
  /** After the demo, keep the cluster up (for the console) until Ctrl-C. @default false */
  keep?: boolean;
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
        `  console:        ${cluster.apiUrl}/console/#token=${cluster.tenantToken}   (signs in as the tenant; docs/console.md)\n` +
        `  tenant token:   ${cluster.tenantToken}   (tenant "default")\n` +
        `  operator token: ${cluster.operatorToken}\n` +
        `  data:           ${dataDir}\n` +
        `  history:        ${cluster.historyUrl ? `${cluster.historyUrl} (finished jobs move here a minute after they end)` : `off (${o.history === false ? '--no-history' : 'PostgreSQL did not start, see above'}): finished jobs stay in etcd`}\n` +
        `  context:        ${saved ? `${DEV_CONTEXT}, selected for the other batch commands (${saved.path})` : '(none for a demo)'}\n\n`,
    );
    let code = 0;
    try {
      if (o.demo) {
        code = await Promise.race([runDemo(cluster, dataDir, o.timeout ?? 120), woken.then(() => 1)]);
        if (o.keep && !failed && !interrupted.signal.aborted) {
          say('• --keep: the cluster stays up for the console (the link above); Ctrl-C stops it');
          await woken;
        }
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

/**
 * The demo: the sample workflow (`demoWorkflow`) from submit to summary, bounded by
 * `timeoutSeconds`. Its DAG is shown as it progresses (one line, rewritten on a terminal; a line
 * a change otherwise), followed from the workflow's event stream and its step jobs'.
 */
async function runDemo(cluster: LocalCluster, dataDir: string, timeoutSeconds: number): Promise<number> {
  const client = new BatchClient({ url: cluster.apiUrl, token: cluster.tenantToken });
  const started = Date.now();
  const dir = join(dataDir, 'demo-shards');
  mkdirSync(dir, { recursive: true });
  let last: WorkflowView | undefined;
  const deadline = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      deadline.abort();
      say(
        `\nerror: the demo did not finish within ${timeoutSeconds} s${last ? `: workflow ${last.id} is ${last.phase} (${dagLine(last)})` : ''}; \`batch dev --verbose --demo\` shows the services' logs`,
      );
      resolve(1);
    }, timeoutSeconds * 1000);
  });
  const tty = process.stderr.isTTY;
  let shown = '';
  const show = (line: string) => {
    if (line === shown) return;
    shown = line;
    if (tty) process.stderr.write(`\r\x1b[2K  ${line}`);
    else say(`  ${line}`);
  };
  const demo = async (): Promise<number> => {
    const wf = await client.workflows.submit(demoWorkflow(dir));
    last = wf.submitted;
    say(`• submitted workflow ${wf.id}: prepare (fails once, retried) → count (a map over ${DEMO_SHARDS} shards) → reduce`);
    process.stdout.write(`  console:  ${cluster.apiUrl}/console/#token=${cluster.tenantToken}&to=/workflows/${wf.id}\n`);
    // A fan-out's tasks ended, read from its job at each change of the workflow.
    const ended = new Map<string, { done: number; of: number }>();
    for await (const w of wf.events({ signal: deadline.signal })) {
      last = w;
      for (const s of w.steps) {
        if (!s.map || !s.jobId) continue;
        const j = await client.getJob(s.jobId).catch(() => undefined);
        if (j) ended.set(s.jobId, { done: j.taskCounts.succeeded + j.taskCounts.failed + j.taskCounts.cancelled, of: j.tasks });
      }
      show(dagLine(w, ended));
    }
    const final = await client.workflows.get(wf.id);
    last = final;
    show(dagLine(final, ended));
    if (tty) process.stderr.write('\n');
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const step = (name: string) => final.steps.find((s) => s.name === name);
    const prepare = step('prepare')?.jobId ? await client.listTasks(step('prepare')!.jobId!).catch(() => undefined) : undefined;
    const reduceJob = step('reduce')?.jobId;
    // The values the tasks returned (the demo's are small: inline, never references to the blob store).
    const resultsOf = async (id: string | null | undefined): Promise<unknown[]> =>
      id ? (await client.jobs.results(id).catch(() => ({ results: [] }))).results.map((r) => ('value' in r ? r.value : r.ref)) : [];
    const total = (await resultsOf(reduceJob))[0];
    const counts = await resultsOf(step('count')?.jobId);
    process.stdout.write(
      `\nDemo workflow ${final.id}: ${final.phase} in ${seconds} s\n` +
        `  steps:    ${final.steps.map((s) => `${s.name} ${s.phase}`).join(', ')}\n` +
        `  prepare:  ${prepare ? `${prepare.tasks.length} attempts (${prepare.tasks.map((t) => `${t.attempt}: ${t.state}${t.exitCode ? ` exit ${t.exitCode}` : ''}`).join(', ')})` : '(its tasks could not be read)'}\n` +
        `  count:    ${counts.map((v) => JSON.stringify(v)).join(' ')}\n` +
        `  reduce:   total ${total ?? '(none)'}${total === demoTotal() ? ' (right)' : ` (expected ${demoTotal()})`}\n` +
        `  trace id: ${final.traceId ?? '(none: tracing is off; set OTEL_EXPORTER_OTLP_ENDPOINT to export traces)'}\n\n`,
    );
    return final.phase === 'Succeeded' && total === demoTotal() ? 0 : 1;
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
