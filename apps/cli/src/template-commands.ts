/**
 * `batch workflow register|run|templates|template get|delete`: workflow templates, a workflow
 * defined once with `{{params.<name>}}` in its strings, versioned, and run with `--param k=v`
 * (docs/workflows.md, "Templates and parameters").
 */
import type { PutWorkflowTemplateRequest, WorkflowTemplateView } from '@batchapi/api';
import type { BatchClient, WorkflowHandle } from '@batchapi/sdk';
import type { Command } from 'commander';
import { isData, type OutputFormat, printData, table } from './output';
import { outputOption, pairs, readRequestFile, UsageError, wholeNumber } from './submit-args';

// commander hands each action its own argument list
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Run = (fn: (...a: any[]) => Promise<number | void>) => (...a: any[]) => Promise<void>;

/** What `batch workflow register -f` reads: the PUT body plus the template's `name`. */
export type TemplateFile = PutWorkflowTemplateRequest & { name: string };

/** Reads a template file (YAML or JSON): `{name, description?, parameters?, workflow}`. */
export function readTemplateFile(path: string): { name: string; body: PutWorkflowTemplateRequest } {
  const { name, ...body } = readRequestFile<TemplateFile>(path);
  if (typeof name !== 'string' || name === '') throw new UsageError(`${path} must name the template: name: <name>`);
  return { name, body };
}

/** One line per template: name, latest version, parameters (required ones starred), description. */
export function templateRows(templates: readonly WorkflowTemplateView[]): string {
  return table(
    ['NAME', 'VERSION', 'PARAMETERS', 'UPDATED', 'DESCRIPTION'],
    templates.map((t) => [t.name, String(t.version), paramList(t), new Date(t.updatedAt).toISOString(), t.description ?? '']),
  );
}

/** `date*, region=eu`: a parameter without a default is starred (required), one with it shows it. */
function paramList(t: WorkflowTemplateView): string {
  const ps = Object.entries(t.parameters).map(([k, p]) => (p.default === undefined ? `${k}*` : `${k}=${p.default}`));
  return ps.length ? ps.join(', ') : '-';
}

/** A template in full, as `batch workflow template get` prints it. */
export function templateDetail(t: WorkflowTemplateView): string {
  const params = Object.entries(t.parameters).map(
    ([k, p]) =>
      `  ${k}${p.default === undefined ? ' (required)' : ` = ${p.default}`}${p.pattern ? `  pattern ${p.pattern}` : ''}${p.description ? `  — ${p.description}` : ''}`,
  );
  return [
    `name:        ${t.name} (tenant ${t.tenant})`,
    `version:     ${t.version} of ${t.versions.join(', ')} (updated ${new Date(t.updatedAt).toISOString()})`,
    ...(t.description ? [`description: ${t.description}`] : []),
    `parameters:${params.length ? '' : ' none'}`,
    ...params,
    `steps:       ${Array.isArray(t.workflow.steps) ? (t.workflow.steps as Array<{ name?: unknown }>).map((s) => String(s.name)).join(', ') : '-'}`,
    '',
  ].join('\n');
}

/**
 * Adds the template commands to `batch workflow`.
 * @param printOrFollow - what `workflow submit` prints for a new run (its id, or followed to its end with `--follow`)
 */
export function defineTemplateCommands(
  wf: Command,
  client: () => BatchClient,
  run: Run,
  printOrFollow: (c: BatchClient, handle: WorkflowHandle, o: { wait?: boolean; output: OutputFormat }) => Promise<number>,
): void {
  wf.command('register')
    .description('register a workflow template, or a new version of it, from a YAML or JSON file (- for stdin): name, description, parameters, workflow')
    .requiredOption('-f, --file <path>', 'the template: {name, description?, parameters?: {<p>: {default?, description?, pattern?}}, workflow}')
    .addOption(outputOption())
    .action(
      run(async (o: { file: string; output: OutputFormat }) => {
        const { name, body } = readTemplateFile(o.file);
        const t = await client().workflowTemplates.put(name, body);
        if (isData(o.output)) printData(t, o.output);
        else process.stdout.write(`${t.name} version ${t.version}\n`);
      }),
    );
  wf.command('run')
    .description('run a workflow template with parameter values; prints the run id (or follows it with --follow)')
    .argument('<template>')
    .option('--param <KEY=VALUE...>', 'a parameter value (repeatable)')
    .option('--template-version <n>', "the version to run (default: the latest; --version is the CLI's own)", wholeNumber(1))
    .option('--idempotency-key <key>', 'retrying with the same key returns the same run')
    .option('--follow', 'follow the run to its end with a progress bar; exit 0 only if it succeeded')
    .addOption(outputOption())
    .action(
      run(async (name: string, o: { param?: string[]; templateVersion?: number; idempotencyKey?: string; follow?: boolean; output: OutputFormat }) => {
        const c = client();
        const handle = await c.workflowTemplates.run(name, { params: pairs(o.param, '--param'), version: o.templateVersion, idempotencyKey: o.idempotencyKey });
        return printOrFollow(c, handle, { wait: o.follow, output: o.output });
      }),
    );
  wf.command('templates')
    .description('list workflow templates at their latest versions')
    .option('--limit <n>', 'at most this many (1–1000)', wholeNumber(1), 100)
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (o: { limit: number; tenant?: string; output: OutputFormat }) => {
        const templates = await client().workflowTemplates.list({ limit: o.limit, tenant: o.tenant });
        if (isData(o.output)) printData({ templates }, o.output);
        else process.stdout.write(templateRows(templates));
      }),
    );
  const tpl = wf.command('template').description('one workflow template: get, delete');
  tpl
    .command('get')
    .description('show a workflow template: its parameters and steps (-o yaml for the whole workflow)')
    .argument('<name>')
    .option('--template-version <n>', 'an older version (default: the latest)', wholeNumber(1))
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (name: string, o: { templateVersion?: number; tenant?: string; output: OutputFormat }) => {
        const t = await client().workflowTemplates.get(name, { version: o.templateVersion, tenant: o.tenant });
        if (isData(o.output)) printData(t, o.output);
        else process.stdout.write(templateDetail(t));
      }),
    );
  tpl
    .command('delete')
    .description('delete a workflow template and every version (its runs stay)')
    .argument('<name>')
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (name: string, o: { tenant?: string; output: OutputFormat }) => {
        const t = await client().workflowTemplates.delete(name, { tenant: o.tenant });
        if (isData(o.output)) printData(t, o.output);
        else process.stdout.write(`${t.name} deleted\n`);
      }),
    );
}
