/**
 * `batch dev`: starts the local cluster and keeps it until Ctrl-C. With `--demo` it submits
 * a sample array job, shows its progress live, prints a summary and stops.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobView } from '@batchapi/api';
import { BatchClient } from '@batchapi/sdk';
import { SingleBar } from 'cli-progress';
import { LocalCluster } from './local-cluster';
import { countsLine } from './output';
import { cacheDir, saveSettings } from './settings';

export interface DevOptions {
  demo?: boolean;
  fresh?: boolean;
  dataDir?: string;
  executors?: string;
  simulatedNodes?: string;
  verbose?: boolean;
  /** Demo time limit, seconds. */
  timeout?: string;
}

const say = (s: string) => process.stderr.write(`${s}\n`);

export async function dev(o: DevOptions): Promise<number> {
  const dataDir = o.dataDir ?? join(cacheDir(), 'dev', o.demo ? `demo-${process.pid}` : 'cluster');
  if (o.fresh || o.demo) rmSync(dataDir, { recursive: true, force: true });
  let failed: string | undefined;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((r) => { wake = r; });
  const cluster = await LocalCluster.start({
    dataDir,
    executors: Number(o.executors ?? 1),
    simulatedNodes: Number(o.simulatedNodes ?? 0),
    verbose: o.verbose,
    onStep: (s) => say(`• ${s}`),
    onChildExit: (name, code, signal) => { failed = `${name} exited (${signal ?? `code ${code}`})`; wake(); },
  });
  const onSignal = () => wake();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // The demo's cluster lives for one job: other commands keep pointing at `batch dev`'s.
  const settingsPath = o.demo ? '(not saved for a demo)' : saveSettings({ api: cluster.apiUrl, token: cluster.tenantToken });
  process.stdout.write(
    `BatchAPI local cluster is up.\n  API:            ${cluster.apiUrl}\n  tenant token:   ${cluster.tenantToken}\n  operator token: ${cluster.operatorToken}\n  data:           ${dataDir}\n` +
      `  settings for the other batch commands: ${settingsPath}\n\nexport BATCH_API=${cluster.apiUrl} BATCH_TOKEN=${cluster.tenantToken}\n\n`,
  );
  let code = 0;
  try {
    if (o.demo) {
      code = await Promise.race([runDemo(cluster, Number(o.timeout ?? 120)), stopped.then(() => 1)]);
    } else {
      say('Ctrl-C stops the cluster.');
      await stopped;
    }
  } finally {
    say('• stopping the cluster');
    await cluster.stop();
    if (o.demo) rmSync(dataDir, { recursive: true, force: true });
  }
  if (failed) { say(`error: ${failed}; the cluster was stopped`); return 1; }
  return code;
}

async function runDemo(cluster: LocalCluster, timeoutSeconds: number): Promise<number> {
  const client = new BatchClient({ url: cluster.apiUrl, token: cluster.tenantToken });
  const tasks = 8;
  const started = Date.now();
  const job = await client.submitJob({
    name: 'demo-array',
    tasks,
    resources: { cpu: '250m', memory: '64Mi' },
    command: ['sh', '-c', 'echo "task $BATCH_TASK_INDEX of job $BATCH_JOB_ID on $BATCH_NODE (attempt $BATCH_ATTEMPT)"; sleep 1'],
  });
  say(`• submitted job ${job.id}: ${tasks} tasks`);
  const tty = process.stderr.isTTY;
  const bar = tty ? new SingleBar({ format: ' {bar} {value}/{total} done | {counts}', hideCursor: true }, undefined) : undefined;
  bar?.start(tasks, 0, { counts: '' });
  const done = (j: JobView) => j.taskCounts.succeeded + j.taskCounts.failed + j.taskCounts.cancelled;
  let final: JobView;
  try {
    final = await client.waitForJob(job.id, {
      intervalMs: 200,
      timeoutMs: timeoutSeconds * 1000,
      onUpdate: (j) => (bar ? bar.update(done(j), { counts: countsLine(j) }) : say(`  ${j.phase}: ${countsLine(j)}`)),
    });
  } finally {
    bar?.stop();
  }
  let log = '';
  for await (const chunk of client.logs(job.id, 0)) log += chunk;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `\nDemo job ${final.id} ${final.phase} in ${seconds} s\n  tasks: ${countsLine(final)}\n  trace: ${final.traceId ?? '(tracing off: set OTEL_EXPORTER_OTLP_ENDPOINT to export)'}\n  task 0 said: ${log.trim().split('\n')[0] ?? ''}\n\n`,
  );
  return final.phase === 'Succeeded' ? 0 : 1;
}
