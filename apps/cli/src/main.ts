#!/usr/bin/env node
/** The `batch` command. */
import { ApiError } from '@batchapi/api';
import { BatchClient } from '@batchapi/sdk';
import { Command, Option } from 'commander';
import { dev } from './dev';
import { jobDetail, jobRows, type OutputFormat, printJson, table } from './output';
import { runSimulate } from './simulate';
import { resolveSettings } from './settings';
import { submitRequest, UsageError } from './submit-args';

const program = new Command('batch').description('BatchAPI: submit, follow and manage batch jobs').showHelpAfterError();
program.option('--api <url>', 'API base URL (else $BATCH_API, else the file batch dev writes)').option('--token <token>', 'bearer token (else $BATCH_TOKEN)');
const output = () => new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table');

function client(): BatchClient {
  const s = resolveSettings(program.opts());
  if (!s) throw new UsageError('no API configured: start one with "batch dev", or set BATCH_API and BATCH_TOKEN');
  return new BatchClient({ url: s.api, token: s.token });
}

let exitCode = 0;
const run = (fn: (...a: any[]) => Promise<number | void>) => async (...a: any[]) => { exitCode = (await fn(...a)) ?? 0; };

program
  .command('submit')
  .description('submit a job: batch submit [options] -- <command> [args...]')
  .argument('<command...>', 'the program and its arguments (after --)')
  .option('--name <name>').option('--tasks <n>', 'number of tasks (array job)').option('--cpu <q>', 'cores per task, e.g. 500m or 2')
  .option('--memory <q>', 'memory per task, e.g. 512Mi').option('--gpu <n>', 'GPUs per task (a fraction below 1 shares one)')
  .option('--queue <name>').option('--priority <n>').option('--gang', 'start all tasks together or none')
  .option('--env <KEY=VALUE...>', 'environment variable (repeatable)').option('--label <KEY=VALUE...>').option('--selector <KEY=VALUE...>', 'node label to require')
  .option('--idempotency-key <key>', 'retrying with the same key returns the same job').option('--wait', 'wait until the job ends; exit 0 only if it succeeded')
  .addOption(output())
  .action(run(async (command: string[], o) => {
    const c = client();
    const job = await c.submitJob(submitRequest(command, o), { idempotencyKey: o.idempotencyKey });
    const final = o.wait ? await c.waitForJob(job.id) : job;
    if (o.output === 'json') printJson(final);
    else process.stdout.write(o.wait ? jobDetail(final) : `${job.id}\n`);
    return o.wait && final.phase !== 'Succeeded' ? 1 : 0;
  }));

program.command('get').argument('<id>').addOption(output()).description('show a job').action(run(async (id: string, o: { output: OutputFormat }) => {
  const job = await client().getJob(id);
  if (o.output === 'json') printJson(job); else process.stdout.write(jobDetail(job));
}));

program
  .command('list').description('list jobs').option('--state <phase>').option('--queue <name>').option('--limit <n>', 'page size', '50').option('--page-token <t>').addOption(output())
  .action(run(async (o) => {
    const page = await client().listJobs({ state: o.state, queue: o.queue, limit: Number(o.limit), pageToken: o.pageToken });
    if (o.output === 'json') printJson(page);
    else process.stdout.write(jobRows(page.jobs) + (page.nextPageToken ? `(more: --page-token ${page.nextPageToken})\n` : ''));
  }));

program
  .command('logs').description("print a task's log").argument('<id>').option('--task <n>', 'task index', '0').option('--attempt <n>').option('--stderr', 'stderr instead of stdout').option('-f, --follow', 'keep printing until the task ends')
  .action(run(async (id: string, o) => {
    for await (const chunk of client().logs(id, Number(o.task), { stream: o.stderr ? 'stderr' : 'stdout', attempt: o.attempt ? Number(o.attempt) : undefined, follow: !!o.follow })) process.stdout.write(chunk);
  }));

program.command('why').argument('<id>').addOption(output()).description('why are this job\'s tasks pending? blockers and what would let them run').action(run(async (id: string, o: { output: OutputFormat }) => {
  const w = await client().why(id);
  if (o.output === 'json') { printJson(w); return; }
  process.stdout.write(`Job ${w.jobId} (${w.phase}): ${w.pendingTasks} task${w.pendingTasks === 1 ? '' : 's'} pending, position ${w.position} in its queue\n`);
  for (const m of w.messages) process.stdout.write(`  - ${m}\n`);
  if (w.counterfactuals.length) process.stdout.write(`It would run now:\n${w.counterfactuals.map((c) => `  - ${c}\n`).join('')}`);
}));

program.command('queues').addOption(output()).description('queues: quota, usage, fair share, pending work').action(run(async (o: { output: OutputFormat }) => {
  const { queues } = await client().listQueues();
  if (o.output === 'json') { printJson({ queues }); return; }
  process.stdout.write(table(['QUEUE', 'TENANT', 'WEIGHT', 'NOMINAL', 'USED', 'SHARE', 'RUNNING', 'PENDING'], queues.map((q) => [
    q.name, q.tenant, String(q.weight), JSON.stringify(q.nominal), JSON.stringify(q.used), q.fairShare.toFixed(3), String(q.runningTasks), `${q.pendingTasks} (${q.pendingJobs} jobs)`,
  ])));
}));

program.command('nodes').addOption(output()).description('list nodes with capacity, allocation and cordons (operator)').action(run(async (o: { output: OutputFormat }) => {
  const { nodes } = await client().listNodes();
  if (o.output === 'json') { printJson({ nodes }); return; }
  process.stdout.write(table(['NAME', 'CAPACITY', 'ALLOCATED', 'GPUS', 'STATUS'], nodes.map((n) => [
    n.name, JSON.stringify(n.capacity), JSON.stringify(n.allocated), String(n.gpus),
    n.cordon ? `${n.cordon.drainDeadline ? 'draining' : 'cordoned'}: ${n.cordon.reason}` : 'ready',
  ])));
}));
program.command('cordon').argument('<node>').requiredOption('--reason <text>').description('stop new work on a node (operator)').action(run(async (node: string, o) => {
  await client().cordonNode(node, o.reason);
  process.stdout.write(`${node} cordoned\n`);
}));
program.command('drain').argument('<node>').requiredOption('--reason <text>').option('--deadline <seconds>', 'time running tasks get before they are preempted and requeued', '300').description('cordon a node and move its work off it (operator)').action(run(async (node: string, o) => {
  const n = await client().drainNode(node, o.reason, Number(o.deadline));
  process.stdout.write(`${node} draining until ${n.cordon?.drainDeadline}\n`);
}));
program.command('uncordon').argument('<node>').description('let a node take work again (operator)').action(run(async (node: string) => {
  await client().uncordonNode(node);
  process.stdout.write(`${node} ready\n`);
}));

program.command('cancel').argument('<id>').addOption(output()).description('cancel a job (running tasks get SIGTERM, then SIGKILL)').action(run(async (id: string, o: { output: OutputFormat }) => {
  const job = await client().cancelJob(id);
  if (o.output === 'json') printJson(job); else process.stdout.write(`${job.id} ${job.phase}${job.phase === 'Cancelled' ? '' : ' (stopping)'}\n`);
}));

program
  .command('dev').description('start the all-in-one local cluster (etcd, the four services, a local executor); Ctrl-C stops it')
  .option('--demo', 'run a sample array job, show it, then stop').option('--fresh', 'start from empty data').option('--data-dir <dir>')
  .option('--executors <n>', 'local executors', '1').option('--simulated-nodes <n>', 'also simulate this many nodes (tasks "run" for BATCH_SIM_SECONDS, default 1 s, without processes)', '0').option('--verbose', "show the services' logs").option('--timeout <s>', 'demo time limit in seconds', '120')
  .action(run((o) => dev(o)));

program
  .command('simulate').description('replay a workload on a node inventory with the live scheduling code (SIMULATOR.md)')
  .requiredOption('--nodes <file>', 'nodes.jsonl').requiredOption('--workload <file>', 'workload.jsonl').option('--queues <file>', 'queues.json').option('--policy <p>', 'bin-pack or first-fit', 'bin-pack')
  .action(run(async (o) => runSimulate(o)));

program.parseAsync(process.argv).then(
  () => process.exit(exitCode),
  (err: unknown) => {
    if (err instanceof UsageError) { process.stderr.write(`error: ${err.message}\n`); process.exit(2); }
    if (err instanceof ApiError) {
      process.stderr.write(`error: ${err.code}: ${err.message}${err.details.field ? ` (field ${err.details.field})` : ''}${err.details.id ? ` (id ${err.details.id})` : ''}\n`);
      process.exit(1);
    }
    process.stderr.write(`error: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  },
);
