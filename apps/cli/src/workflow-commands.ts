/**
 * `batch run` (submit and follow a job with a progress bar; the exit code follows the
 * outcome) and `batch workflow submit|get|list|retry|cancel`. Both follow the API's event
 * streams, so nothing polls.
 */
import { TERMINAL_WORKFLOW_PHASES, type JobView, type SubmitWorkflowRequest, type WorkflowView } from '@batchapi/api';
import type { BatchClient } from '@batchapi/sdk';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { countsLine, isData, jobDetail, type OutputFormat, printData, workflowDetail, workflowRows } from './output';
import { defineSubmit, outputOption, readRequestFile, submitInvocation, wholeNumber } from './submit-args';
import { defineTemplateCommands } from './template-commands';

// commander hands each action its own argument list
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Run = (fn: (...a: any[]) => Promise<number | void>) => (...a: any[]) => Promise<void>;

/** Exit code of `batch run` and `workflow submit --wait`: 0 when it succeeded, else 1. */
export const exitCodeOf = (phase: string): number => (phase === 'Succeeded' ? 0 : 1);

/** A progress display on stderr: a bar on a terminal, one line per change otherwise. */
class Progress {
  private bar?: SingleBar;
  private last = '';
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    private readonly unit: string,
  ) {
    if (process.stderr.isTTY) {
      this.bar = new SingleBar(
        { format: `{bar} {value}/{total} ${unit} | {counts} | {rate}/s | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
        Presets.shades_classic,
      );
      this.bar.start(total, 0, { counts: '', rate: '0.0' });
    }
  }

  update(done: number, counts: string): void {
    const rate = (done / Math.max(0.001, (Date.now() - this.started) / 1000)).toFixed(1);
    if (this.bar) {
      this.bar.update(done, { counts, rate });
      return;
    }
    const line = `${done}/${this.total} ${this.unit} | ${counts}`;
    if (line !== this.last) process.stderr.write(`${line}\n`);
    this.last = line;
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** `batch run`: the flags of `batch submit`, then follows the job to its end. */
export function defineRun(program: Command, client: () => BatchClient, run: Run): void {
  defineSubmit(program.command('run'))
    .description('submit a job and follow it with a progress bar: batch run [options] -- <command> [args...]; exits 0 only if it succeeded')
    .action(
      run(async (command: string[], flags) => {
        const inv = submitInvocation(command, flags);
        const handle = await client().jobs.submit(inv.request, { idempotencyKey: inv.idempotencyKey });
        if (!isData(inv.output)) process.stderr.write(`${handle.id} submitted\n`);
        const progress = new Progress(handle.submitted.tasks, 'tasks');
        let final: JobView;
        try {
          final = await handle.wait({ onUpdate: (j) => progress.update(j.taskCounts.succeeded + j.taskCounts.failed + j.taskCounts.cancelled, countsLine(j)) });
        } finally {
          progress.stop();
        }
        if (isData(inv.output)) printData(final, inv.output);
        else process.stdout.write(jobDetail(final));
        return exitCodeOf(final.phase);
      }),
    );
}

/** Reads a workflow file: YAML or JSON (JSON is YAML too). */
export function readWorkflowFile(path: string): SubmitWorkflowRequest {
  return readRequestFile<SubmitWorkflowRequest>(path);
}

/** Follows a workflow to its end with a bar over its steps. */
async function follow(c: BatchClient, id: string, first: WorkflowView): Promise<WorkflowView> {
  const handle = await c.workflows.handle(id);
  const progress = new Progress(first.steps.length, 'steps');
  const summary = (w: WorkflowView) => {
    const by = new Map<string, number>();
    for (const s of w.steps) by.set(s.phase, (by.get(s.phase) ?? 0) + 1);
    return [...by].map(([p, n]) => `${n} ${p.toLowerCase()}`).join(', ');
  };
  try {
    return await handle.wait({
      onUpdate: (w) => progress.update(w.steps.filter((s) => ['Succeeded', 'Failed', 'Skipped', 'Cancelled'].includes(s.phase)).length, summary(w)),
    });
  } finally {
    progress.stop();
  }
}

const show = (w: WorkflowView, output: OutputFormat) => (isData(output) ? printData(w, output) : process.stdout.write(workflowDetail(w)));

/**
 * What `batch workflow submit` and `retry` print: the new run's id (or its view with `-o`), or
 * with `--wait` the run followed to its end; the exit code is 0 unless it ended other than Succeeded.
 */
async function printOrFollow(c: BatchClient, handle: { id: string; submitted: WorkflowView }, o: { wait?: boolean; output: OutputFormat }): Promise<number> {
  if (!o.wait) {
    if (isData(o.output)) printData(handle.submitted, o.output);
    else process.stdout.write(`${handle.id}\n`);
    return 0;
  }
  const final = TERMINAL_WORKFLOW_PHASES.has(handle.submitted.phase) ? handle.submitted : await follow(c, handle.id, handle.submitted);
  show(final, o.output);
  return exitCodeOf(final.phase);
}

/** `batch workflow submit|get|list|retry|cancel`, and the template commands (`register|run|templates|template`). */
export function defineWorkflow(program: Command, client: () => BatchClient, run: Run): void {
  const wf = program.command('workflow').description('workflows: DAGs of jobs (docs/workflows.md)');
  wf.command('submit')
    .description('submit a workflow from a YAML or JSON file (- for stdin)')
    .requiredOption('-f, --file <path>', 'the workflow (the body of POST /v1/workflows)')
    .option('--idempotency-key <key>', 'retrying with the same key returns the same workflow')
    .option('--wait', 'follow it to its end with a progress bar; exit 0 only if it succeeded')
    .addOption(outputOption())
    .action(
      run(async (o: { file: string; idempotencyKey?: string; wait?: boolean; output: OutputFormat }) => {
        const c = client();
        const handle = await c.workflows.submit(readWorkflowFile(o.file), { idempotencyKey: o.idempotencyKey });
        return printOrFollow(c, handle, o);
      }),
    );
  wf.command('get')
    .description('show a workflow and its steps')
    .argument('<id>')
    .option('-w, --watch', 'follow it to its end')
    .addOption(outputOption())
    .action(
      run(async (id: string, o: { watch?: boolean; output: OutputFormat }) => {
        const c = client();
        let w = await c.workflows.get(id);
        if (o.watch && !TERMINAL_WORKFLOW_PHASES.has(w.phase)) w = await follow(c, id, w);
        show(w, o.output);
      }),
    );
  wf.command('list')
    .description('list workflows')
    .option('--limit <n>', 'at most this many (1–1000)', wholeNumber(1), 100)
    .option('--template <name>', 'only the runs of this workflow template')
    .addOption(outputOption())
    .action(
      run(async (o: { limit: number; template?: string; output: OutputFormat }) => {
        const workflows = await client().workflows.list(o.limit, { template: o.template });
        if (isData(o.output)) printData({ workflows }, o.output);
        else process.stdout.write(workflowRows(workflows, o.output === 'wide'));
      }),
    );
  wf.command('retry')
    .description('re-run a finished run from its failure: a new run of its failed, cancelled and skipped steps and those after them; the others are reused')
    .argument('<run>', 'the id of a finished run that did not succeed')
    .option('--idempotency-key <key>', 'retrying the command with the same key returns the same new run')
    .option('--wait', 'follow the new run to its end with a progress bar; exit 0 only if it succeeded')
    .addOption(outputOption())
    .action(
      run(async (id: string, o: { idempotencyKey?: string; wait?: boolean; output: OutputFormat }) => {
        const c = client();
        const handle = await c.workflows.retry(id, { idempotencyKey: o.idempotencyKey });
        return printOrFollow(c, handle, o);
      }),
    );
  wf.command('cancel')
    .description('cancel a workflow: its running steps are cancelled, pending ones never run')
    .argument('<id>')
    .addOption(outputOption())
    .action(
      run(async (id: string, o: { output: OutputFormat }) => {
        const w = await client().workflows.cancel(id);
        if (isData(o.output)) printData(w, o.output);
        else process.stdout.write(`${w.id} ${w.phase}${TERMINAL_WORKFLOW_PHASES.has(w.phase) ? '' : ' (cancelling)'}\n`);
      }),
    );
  defineTemplateCommands(wf, client, run, printOrFollow);
}
