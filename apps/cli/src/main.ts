#!/usr/bin/env node
/**
 * The `batch` command. Exit codes: 0 done, 1 the API or the cluster said no (printed as
 * `error: <code>: <message>`), 2 bad usage.
 */
import { ApiError, JOB_SORTS, JobPhase, type JobView, TASK_LIST_STATES, TERMINAL_PHASES } from '@batchapi/api';
import { BatchClient } from '@batchapi/sdk';
import { Command, CommanderError, Option } from 'commander';
import { dev } from './dev';
import { jobDetail, jobRows, type OutputFormat, isData, printData, queueTable, table, usageTable } from './output';
import { defineRun, defineWorkflow } from './workflow-commands';
import { defineSchedules } from './schedule-commands';
import { defineSemaphores } from './semaphore-commands';
import { completionScript } from './completion';
import { resolveSettings } from './settings';
import { ContextError, type Role, ROLES } from './contexts';
import { defineConfig } from './config-commands';
import { cliVersion } from './version';
import { pastTime } from './times';
import { runSimulate } from './simulate';
import { DEFAULT_WORKING_DIR_MAX_MIB, shipWorkingDir } from './working-dir';
import { collectTaskIndex, defineSubmit, outputOption, type ResubmitFlags, resubmitChanges, submitInvocation, UsageError, wholeNumber } from './submit-args';

const program = new Command('batch')
  .description('BatchAPI: submit, follow and manage batch jobs')
  // Usage errors exit 2 (commander's own default is 1); subcommands inherit this.
  .exitOverride()
  .showHelpAfterError('(add --help for usage)')
  .version(cliVersion(), '-V, --version', 'print the version')
  .option('--api <url>', 'API base URL (else $BATCH_API, else the selected context)')
  .option('--token <token>', 'bearer token (else $BATCH_TOKEN, or $BATCH_OPERATOR_TOKEN for operator commands, else the context)')
  .option('--context <name>', 'use this context, not the selected one (else $BATCH_CONTEXT; batch config get-contexts)')
  .addOption(new Option('--as <role>', "act as this role: operator commands (nodes, drain, …) use the context's operator token").choices([...ROLES]));

/** A client of the API that the flags, the `BATCH_*` variables or the selected context name, acting as `role` unless `--as` says otherwise. */
function client(role: Role = 'tenant'): BatchClient {
  const s = resolveSettings(program.opts(), process.env, role);
  if (!s)
    throw new UsageError(
      'no API configured: start one with "batch dev", select a context (batch config use-context NAME), or set BATCH_API and BATCH_TOKEN (or give --api and --token)',
    );
  return new BatchClient({ url: s.api, token: s.token });
}

let exitCode = 0;
const run =
  // commander hands each action its own argument list
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (fn: (...a: any[]) => Promise<number | void>) =>
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    async (...a: any[]) => {
      exitCode = (await fn(...a)) ?? 0;
    };

defineSubmit(program.command('submit')).action(
  run(async (command: string[], flags) => {
    const inv = submitInvocation(command, flags);
    const c = client();
    if (flags.workingDir) {
      const digest = await shipWorkingDir(c, flags.workingDir, flags.workingDirMaxMib ?? DEFAULT_WORKING_DIR_MAX_MIB, (line) =>
        process.stderr.write(`${line}\n`),
      );
      inv.request.workingDir = { digest };
    }
    const job = await c.submitJob(inv.request, { idempotencyKey: inv.idempotencyKey });
    const final = inv.wait ? await c.waitForJob(job.id) : job;
    if (isData(inv.output)) printData(final, inv.output);
    else process.stdout.write(inv.wait ? jobDetail(final) : `${job.id}\n`);
    return inv.wait && final.phase !== 'Succeeded' ? 1 : 0;
  }),
);

program
  .command('get')
  .description('show a job')
  .argument('<id>')
  .addOption(outputOption())
  .action(
    run(async (id: string, o: { output: OutputFormat }) => {
      const job = await client().getJob(id);
      if (isData(o.output)) printData(job, o.output);
      else process.stdout.write(jobDetail(job));
    }),
  );

program
  .command('list')
  .description('list jobs, live and finished, oldest first (by submit time) unless --sort says otherwise')
  .addOption(new Option('--state <phase>', 'only jobs in this phase').choices(Object.values(JobPhase)))
  .option('--queue <name>', 'only jobs of this queue')
  .option('--tenant <name>', "only this tenant's jobs (operators)")
  .option('-l, --selector <selector>', 'label selector: team=ml,env!=dev,tier in (a,b),gpu,!spot')
  .option('--name <prefix>', 'only jobs whose name starts with this')
  .option('--workflow <id>', 'only the step jobs of this workflow')
  .option('--since <when>', 'submitted at or after: a time ago (30m, 12h, 7d) or an RFC 3339 time', (v: string) => pastTime(v))
  .option('--before <when>', 'submitted before: a time ago or an RFC 3339 time', (v: string) => pastTime(v))
  .option('--finished-since <when>', 'finished at or after: a time ago or an RFC 3339 time (finished jobs only)', (v: string) => pastTime(v))
  .addOption(new Option('--sort <order>', 'submitted, finished (finished jobs only); -submitted, -finished for newest first').choices([...JOB_SORTS]))
  .option('--limit <n>', 'jobs per page (1–1000)', wholeNumber(1), 50)
  .option('--page-token <t>', 'the next page, as the previous one said')
  .addOption(outputOption())
  .action(
    run(async (o) => {
      const page = await client().listJobs({
        state: o.state,
        queue: o.queue,
        tenant: o.tenant,
        labelSelector: o.selector,
        namePrefix: o.name,
        workflow: o.workflow,
        submittedSince: o.since,
        submittedBefore: o.before,
        finishedSince: o.finishedSince,
        sort: o.sort,
        limit: o.limit,
        pageToken: o.pageToken,
      });
      if (isData(o.output)) printData(page, o.output);
      else process.stdout.write(jobRows(page.jobs, o.output === 'wide') + (page.nextPageToken ? `(more: --page-token ${page.nextPageToken})\n` : ''));
    }),
  );

program
  .command('tasks')
  .description("list a job's task attempts by index: state, node, exit code, reason (--state Failed: which failed)")
  .argument('<id>')
  .addOption(new Option('--state <state>', 'only attempts in this state').choices([...TASK_LIST_STATES]))
  .option('--limit <n>', 'rows per page (1–1000)', wholeNumber(1), 100)
  .option('--page-token <t>', 'the next page, as the previous one said')
  .addOption(outputOption())
  .action(
    run(async (id: string, o) => {
      const page = await client().listTasks(id, { state: o.state, limit: o.limit, pageToken: o.pageToken });
      if (isData(o.output)) printData(page, o.output);
      else
        process.stdout.write(
          table(
            ['INDEX', 'ATTEMPT', 'STATE', 'NODE', 'EXIT', 'REASON', 'STARTED', 'ENDED'],
            page.tasks.map((t) => [
              String(t.index),
              String(t.attempt),
              t.state,
              t.node ?? '',
              t.exitCode === undefined ? '' : String(t.exitCode),
              t.reason ?? t.signal ?? '',
              t.startedAt ?? '',
              t.endedAt ?? '',
            ]),
          ) + (page.nextPageToken ? `(more: --page-token ${page.nextPageToken})\n` : ''),
        );
    }),
  );

program
  .command('logs')
  .description("print a task's log (stdout unless --stderr)")
  .argument('<id>')
  .option('--task <n>', 'task index', wholeNumber(0), 0)
  .option('--attempt <n>', 'attempt number (default: the latest)', wholeNumber(1))
  .option('--stderr', 'stderr instead of stdout')
  .option('-f, --follow', 'keep printing until the task ends')
  .action(
    run(async (id: string, o) => {
      for await (const chunk of client().logs(id, o.task, { stream: o.stderr ? 'stderr' : 'stdout', attempt: o.attempt, follow: !!o.follow }))
        process.stdout.write(chunk);
    }),
  );

program
  .command('cancel')
  .description('cancel a job, or with --task only some of its tasks (running tasks get SIGTERM, then SIGKILL)')
  .argument('<id>')
  .option('--task <index>', 'cancel only this task of the job (repeat for more); it never runs again', collectTaskIndex, [])
  .addOption(outputOption())
  .action(
    run(async (id: string, o: { task: number[]; output: OutputFormat }) => {
      let job: JobView | undefined;
      for (const index of o.task) job = await client().cancelTask(id, index);
      job ??= await client().cancelJob(id);
      if (isData(o.output)) printData(job, o.output);
      else if (o.task.length) process.stdout.write(`${job.id} task${o.task.length > 1 ? 's' : ''} ${o.task.join(', ')} cancelled; the job is ${job.phase}\n`);
      // A job that had already ended keeps its phase; a live one stops its tasks and becomes Cancelled.
      else process.stdout.write(`${job.id} ${job.phase}${TERMINAL_PHASES.has(job.phase) ? '' : ' (cancelling)'}\n`);
    }),
  );

program
  .command('resubmit')
  .description(
    "submit a job again: a new job with the job's spec as stored (live or finished), labelled batch.resubmitted-from, with the changes the flags make",
  )
  .argument('<id>')
  .option('--queue <name>', 'run it in this queue instead')
  .option('--priority <n>', 'with this priority instead, -1000 to 1000')
  .option('--cpu <q>', 'cores per task instead, e.g. 2 or 500m')
  .option('--memory <q>', 'memory per task instead, e.g. 4Gi')
  .option('--gpu <n>', 'GPUs per task instead')
  .option('--env <KEY=VALUE...>', 'set this environment variable (repeatable; the others stay)')
  .option('--label <KEY=VALUE...>', 'set this label (repeatable; the others stay)')
  .addOption(outputOption())
  .action(
    run(async (id: string, o: ResubmitFlags & { output: OutputFormat }) => {
      const job = await client().resubmitJob(id, resubmitChanges(o));
      if (isData(o.output)) printData(job, o.output);
      else process.stdout.write(`${job.id}\n`);
    }),
  );

program
  .command('why')
  .description("why are this job's tasks pending? blockers and what would let them run")
  .argument('<id>')
  .addOption(outputOption())
  .action(
    run(async (id: string, o: { output: OutputFormat }) => {
      const w = await client().why(id);
      if (isData(o.output)) {
        printData(w, o.output);
        return;
      }
      process.stdout.write(
        `Job ${w.jobId} (${w.phase}): ${w.pendingTasks} task${w.pendingTasks === 1 ? '' : 's'} pending, position ${w.position} in its queue\n`,
      );
      for (const m of w.messages) process.stdout.write(`  - ${m}\n`);
      if (w.counterfactuals.length) process.stdout.write(`It would run now:\n${w.counterfactuals.map((c) => `  - ${c}\n`).join('')}`);
      if (w.explainedBy === 'admission') process.stdout.write('(worked out by admission from etcd: no scheduler replica answered)\n');
    }),
  );

program
  .command('queues')
  .description('queues: quota, usage, fair share, pending work')
  .addOption(outputOption())
  .action(
    run(async (o: { output: OutputFormat }) => {
      const { queues } = await client().listQueues();
      if (isData(o.output)) {
        printData({ queues }, o.output);
        return;
      }
      process.stdout.write(queueTable(queues));
    }),
  );

program
  .command('usage')
  .description('CPU-, memory- and GPU-hours, attempts and queue waits over a window, by tenant, queue, GPU model or label (finished work)')
  .option('--since <when>', 'attempts that ended at or after: a time ago (30m, 12h, 7d) or an RFC 3339 time', (v: string) => pastTime(v), undefined)
  .option('--until <when>', 'attempts that ended before: a time ago or an RFC 3339 time (default now)', (v: string) => pastTime(v))
  .option('--by <what>', 'tenant, queue, gpuModel or label:<key>', 'tenant')
  .option('--tenant <name>', "only this tenant's jobs (operators)")
  .option('--queue <name>', "only this queue's jobs")
  .addOption(new Option('--step <step>', "also split each group's hours by the hour or the day, from --since").choices(['hour', 'day']))
  .addOption(outputOption())
  .action(
    run(async (o) => {
      const u = await client().usage({ from: o.since ?? pastTime('7d'), to: o.until, groupBy: o.by, tenant: o.tenant, queue: o.queue, step: o.step });
      if (isData(o.output)) {
        printData(u, o.output);
        return;
      }
      process.stdout.write(usageTable(u));
    }),
  );

program
  .command('top')
  .description('live per-queue usage, refreshed in the terminal until Ctrl-C')
  .option('--interval <seconds>', 'refresh period', '2')
  .option('--once', 'print one screen and exit')
  .action(
    run(async (o: { interval: string; once?: boolean }) => {
      const seconds = Number(o.interval);
      if (!(seconds > 0)) throw new UsageError('--interval takes a positive number of seconds');
      const c = client();
      for (;;) {
        const { queues } = await c.listQueues();
        const screen = `BatchAPI — ${new Date().toISOString()} — every ${seconds} s, Ctrl-C to stop\n\n${queueTable(queues)}`;
        // Clear and redraw on a terminal; plain successive screens otherwise.
        process.stdout.write(process.stdout.isTTY && !o.once ? `\x1b[H\x1b[2J${screen}` : screen);
        if (o.once) return;
        await new Promise((r) => setTimeout(r, seconds * 1000));
      }
    }),
  );

program
  .command('nodes')
  .description('list nodes with capacity, allocation and cordons (operator)')
  .addOption(outputOption())
  .action(
    run(async (o: { output: OutputFormat }) => {
      const { nodes } = await client('operator').listNodes();
      if (isData(o.output)) {
        printData({ nodes }, o.output);
        return;
      }
      process.stdout.write(
        table(
          ['NAME', 'CAPACITY', 'ALLOCATED', 'GPUS', 'ISOLATION', 'STATUS'],
          nodes.map((n) => [
            n.name,
            JSON.stringify(n.capacity),
            JSON.stringify(n.allocated),
            String(n.gpus),
            isolationText(n.isolation),
            n.cordon
              ? `${n.cordon.drainDeadline ? 'draining' : 'cordoned'}: ${n.cordon.reason}`
              : n.draining
                ? `stopping: executor draining until ${n.draining.deadline}`
                : 'ready',
          ]),
        ),
      );
    }),
  );
/** A node's isolation level as `batch nodes` shows it: `cgroup2(cpu,memory,pids)`, `rlimit`…; `-` when not reported. */
function isolationText(i: { kind: string; controllers?: string[] } | undefined): string {
  if (!i) return '-';
  return i.controllers ? `${i.kind}(${i.controllers.join(',')})` : i.kind;
}

program
  .command('cordon')
  .description('stop new work on a node (operator)')
  .argument('<node>')
  .requiredOption('--reason <text>')
  .action(
    run(async (node: string, o) => {
      await client('operator').cordonNode(node, o.reason);
      process.stdout.write(`${node} cordoned\n`);
    }),
  );
program
  .command('drain')
  .description('cordon a node and move its work off it (operator)')
  .argument('<node>')
  .requiredOption('--reason <text>')
  .option('--deadline <seconds>', 'time running tasks get before they are preempted and requeued', wholeNumber(0), 300)
  .action(
    run(async (node: string, o) => {
      const n = await client('operator').drainNode(node, o.reason, o.deadline);
      process.stdout.write(`${node} draining until ${n.cordon?.drainDeadline}\n`);
    }),
  );
program
  .command('uncordon')
  .description('let a node take work again (operator)')
  .argument('<node>')
  .action(
    run(async (node: string) => {
      await client('operator').uncordonNode(node);
      process.stdout.write(`${node} ready\n`);
    }),
  );

defineRun(program, client, run);
defineWorkflow(program, client, run);
defineSchedules(program, client, run);
defineSemaphores(program, client, run);
defineConfig(program, run);
program
  .command('completion')
  .description('print a shell completion script: eval "$(batch completion bash)"')
  .argument('<shell>', 'bash (zsh: use bashcompinit)')
  .action(
    run(async (shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`completion supports bash (and zsh through bashcompinit), not "${shell}"`);
      process.stdout.write(completionScript(program));
    }),
  );

program
  .command('dev')
  .description('start the all-in-one local cluster (etcd, the four services, a local executor); Ctrl-C stops it')
  .option('--demo', 'run a sample workflow (a map over shards, a reduce, a step retried once), show its progress, then stop (exit 0 if it succeeded)')
  .option('--keep', 'with --demo: keep the cluster up afterwards, for the console, until Ctrl-C')
  .option('--fresh', 'start from empty data')
  .option(
    '--data-dir <dir>',
    'where the cluster keeps its data (default: ${XDG_CACHE_HOME:-~/.cache}/batchapi/dev/cluster; a demo uses a new directory and removes it)',
  )
  .option('--executors <n>', 'local executors (nodes local-0, local-1, …)', wholeNumber(0), 1)
  .option('--simulated-nodes <n>', 'also simulate this many nodes (tasks "run" for BATCH_SIM_SECONDS, default 1 s, without processes)', wholeNumber(0), 0)
  .option('--verbose', "show the services' logs on stderr, prefixed by service")
  .option('--no-history', 'no PostgreSQL history store: finished jobs stay in etcd')
  .option('--timeout <seconds>', 'time limit of the whole demo', wholeNumber(1), 120)
  .action(run((o) => dev(o)));

program
  .command('simulate')
  .description('replay a workload on a node inventory with the live scheduling code (SIMULATOR.md)')
  .requiredOption('--nodes <file>', 'nodes.jsonl')
  .requiredOption('--workload <file>', 'workload.jsonl')
  .option('--queues <file>', 'queues.json')
  .option('--policy <p>', 'bin-pack or first-fit', 'bin-pack')
  .action(run(async (o) => runSimulate(o)));

program.parseAsync(process.argv).then(
  () => process.exit(exitCode),
  (err: unknown) => {
    // Commander already printed its message (and the hint); help and --version end here with 0.
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    if (err instanceof ContextError) {
      process.stderr.write(`error: ${err.code}: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof ApiError) {
      const about = [err.details.field && `field ${err.details.field}`, err.details.id && `id ${err.details.id}`].filter(Boolean).join(', ');
      process.stderr.write(`error: ${err.code}: ${err.message}${about ? ` (${about})` : ''}\n`);
      process.exit(1);
    }
    process.stderr.write(`error: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  },
);
