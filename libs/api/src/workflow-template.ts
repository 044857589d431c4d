/**
 * Workflow templates: a workflow defined once (a `POST /v1/workflows` body whose strings may hold
 * `{{params.<name>}}`), versioned, and run many times with parameters. The request schemas, the
 * record at `workflow-templates/{tenant}/{name}` (its latest versions), the views, and the pure
 * code: finding placeholders, checking them against the declared parameters, resolving a run's
 * values and substituting them. Admission validates the substituted body exactly as a submit.
 */
import { RE2JS } from 're2js';
import { z } from 'zod';
import { canonicalJson } from './canonical-json';
import { ApiError, ErrorCode } from './errors';
import { jsonBytes } from './limits';
import { MAX_SCHEDULE_TEMPLATE_BYTES } from './schedule';
import { NameSchema } from './schemas';

/** Most versions a template's record keeps (older ones are dropped, oldest first). */
export const MAX_TEMPLATE_VERSIONS = 20;
/** Most parameters one template declares. */
export const MAX_TEMPLATE_PARAMETERS = 50;
/** Most JSON bytes of one version's workflow body (as a schedule's template). */
export const MAX_WORKFLOW_TEMPLATE_BYTES = MAX_SCHEDULE_TEMPLATE_BYTES;
/** Most JSON bytes of a template's whole record: versions past it are dropped, oldest first (bounds a tenant's templates in etcd, and a list page). */
export const MAX_WORKFLOW_TEMPLATE_RECORD_BYTES = 512 * 1024;
/** Longest parameter value (and default), in characters. */
export const MAX_PARAM_VALUE_CHARS = 1024;
/** Longest parameter `pattern`, in characters. */
export const MAX_PARAM_PATTERN_CHARS = 256;
/** Longest template or parameter description, in characters. */
export const MAX_TEMPLATE_DESCRIPTION_CHARS = 1024;
/** Most JSON bytes of a run's workflow body once its parameters are substituted (as an HTTP body of `POST /v1/workflows`). */
export const MAX_TEMPLATE_RUN_BYTES = 1024 * 1024;
/** Label every run of a template carries: the template's name. */
export const TEMPLATE_LABEL = 'batch.template';
/** Label every run of a template carries: the version it ran. */
export const TEMPLATE_VERSION_LABEL = 'batch.template-version';

/** A parameter name: a letter, then letters, digits, "_" and "-"; at most 63 characters. */
export const ParamNameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'must be a letter, then letters, digits, "_" and "-"');

/** A parameter value: at most `MAX_PARAM_VALUE_CHARS` characters, no control characters. */
export const ParamValueSchema = z
  .string()
  .max(MAX_PARAM_VALUE_CHARS)
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must hold no control characters');

/**
 * A `pattern`: an RE2 regular expression (the syntax of Go's `regexp` and of Kubernetes' and
 * Prometheus' patterns: no backreferences or lookaround) the whole value must match. It is
 * matched by RE2 (`re2js`), in time linear in the value, so no pattern can stall the API or the
 * schedule controller whatever it quantifies.
 */
export const ParamPatternSchema = z
  .string()
  .min(1)
  .max(MAX_PARAM_PATTERN_CHARS)
  .refine(compiles, 'must be a valid RE2 regular expression (no backreferences or lookaround)');

function compiles(p: string): boolean {
  try {
    RE2JS.compile(p);
    return true;
  } catch {
    return false;
  }
}

/** One declared parameter. */
export const TemplateParameterSchema = z.strictObject({
  /** The value of a run that gives none. @default none: every run must give one (`missing_parameter`) */
  default: ParamValueSchema.optional(),
  /** @default none */
  description: z.string().max(MAX_TEMPLATE_DESCRIPTION_CHARS).optional(),
  /** A regular expression every value (and the default) must match whole, e.g. `\d{4}-\d{2}-\d{2}`. @default none: any value */
  pattern: ParamPatternSchema.optional(),
});
export type TemplateParameter = z.infer<typeof TemplateParameterSchema>;

/** `PUT /v1/workflow-templates/{name}` body. */
export const PutWorkflowTemplateSchema = z.strictObject({
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
  /** @default none */
  description: z.string().max(MAX_TEMPLATE_DESCRIPTION_CHARS).optional(),
  /** The parameters its workflow's strings may name as `{{params.<name>}}`; at most `MAX_TEMPLATE_PARAMETERS` (50). @default {} */
  parameters: z
    .record(ParamNameSchema, TemplateParameterSchema)
    .refine((p) => Object.keys(p).length <= MAX_TEMPLATE_PARAMETERS, `at most ${MAX_TEMPLATE_PARAMETERS} parameters`)
    .optional(),
  /** A `POST /v1/workflows` body without `tenant`, whose strings may hold `{{params.<name>}}`. */
  workflow: z.record(z.string(), z.unknown()),
});
export type PutWorkflowTemplateRequest = z.infer<typeof PutWorkflowTemplateSchema>;

/** `POST /v1/workflow-templates/{name}/runs` body. */
export const RunWorkflowTemplateSchema = z.strictObject({
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
  /** A value for each parameter; one without a default must be given. @default {} */
  params: z
    .record(z.string().max(63), ParamValueSchema)
    .refine((p) => Object.keys(p).length <= MAX_TEMPLATE_PARAMETERS, `at most ${MAX_TEMPLATE_PARAMETERS} parameters`)
    .optional(),
  /** The version to run, one the record still keeps. @default the latest */
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type RunWorkflowTemplateRequest = z.infer<typeof RunWorkflowTemplateSchema>;

/** Query of `GET /v1/workflow-templates/{name}`. */
export const WorkflowTemplateQuerySchema = z.strictObject({
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
  /** An older version the record still keeps. @default the latest */
  version: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** Query of `DELETE /v1/workflow-templates/{name}`. */
export const WorkflowTemplateTenantQuerySchema = z.strictObject({
  /** Only operators may name a tenant other than their own. @default the token's tenant */
  tenant: NameSchema.optional(),
});

/** `GET /v1/workflow-templates` query. */
export const ListWorkflowTemplatesQuerySchema = z.strictObject({
  /** @default 100 */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** One tenant's templates; only operators may name another tenant. @default the token's tenant (every tenant's for an operator) */
  tenant: NameSchema.optional(),
});

/** One version of a template, as its record keeps it. */
export interface WorkflowTemplateVersion {
  /** 1, 2, … in the order they were put. */
  version: number;
  description?: string;
  parameters: Record<string, TemplateParameter>;
  /** The body as put (placeholders unsubstituted). */
  workflow: Record<string, unknown>;
  /** Epoch ms it was put. */
  createdAt: number;
}

/** The record at `workflow-templates/{tenant}/{name}`. Every write compares its mod revision. */
export interface WorkflowTemplateRecord {
  name: string;
  tenant: string;
  /** Epoch ms of its first version. */
  createdAt: number;
  /** The latest versions, oldest first: at most `MAX_TEMPLATE_VERSIONS`, and at most `MAX_WORKFLOW_TEMPLATE_RECORD_BYTES` in all. */
  versions: WorkflowTemplateVersion[];
}

/** A template at one version, as the API returns it (times in epoch milliseconds). */
export interface WorkflowTemplateView {
  name: string;
  tenant: string;
  version: number;
  /** The versions the record keeps, oldest first (any of them can be run or read). */
  versions: number[];
  description: string | null;
  parameters: Record<string, TemplateParameter>;
  workflow: Record<string, unknown>;
  createdAt: number;
  /** When this version was put. */
  updatedAt: number;
}

/** The view of `t` at `version` (the latest when undefined); undefined when the record no longer keeps it. */
export function workflowTemplateView(t: WorkflowTemplateRecord, version?: number): WorkflowTemplateView | undefined {
  const v = version === undefined ? t.versions[t.versions.length - 1] : t.versions.find((x) => x.version === version);
  if (!v) return undefined;
  return {
    name: t.name,
    tenant: t.tenant,
    version: v.version,
    versions: t.versions.map((x) => x.version),
    description: v.description ?? null,
    parameters: v.parameters,
    workflow: v.workflow,
    createdAt: t.createdAt,
    updatedAt: v.createdAt,
  };
}

const TemplateParameterViewSchema = z.strictObject({
  default: z.string().optional(),
  description: z.string().optional(),
  pattern: z.string().optional(),
});
/** `GET /v1/workflow-templates/{name}` (the schema of `WorkflowTemplateView`). */
export const WorkflowTemplateViewSchema = z.strictObject({
  name: z.string(),
  tenant: z.string(),
  version: z.number().int(),
  versions: z.array(z.number().int()),
  description: z.string().nullable(),
  parameters: z.record(z.string(), TemplateParameterViewSchema),
  workflow: z.record(z.string(), z.unknown()),
  createdAt: z.number(),
  updatedAt: z.number(),
});
/** `GET /v1/workflow-templates`. */
export const WorkflowTemplateListSchema = z.strictObject({ templates: z.array(WorkflowTemplateViewSchema) });

// The view and its schema describe the same shape (checked at compile time).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _sameView: Same<z.infer<typeof WorkflowTemplateViewSchema>, WorkflowTemplateView> = true;
void _sameView;

/** What a run of a template records on its workflow (`template` of the record and view). */
export interface WorkflowTemplateRef {
  name: string;
  version: number;
  /** Every parameter's value: those the run gave, and the defaults of the others. */
  params: Record<string, string>;
}

/** `{{params.<name>}}`, spaces allowed inside the braces. */
const PLACEHOLDER = /\{\{\s*params\.([^\s{}]*)\s*\}\}/g;

/** One `{{params.<name>}}` in a body: the parameter it names and the field of the string that holds it. */
export interface Placeholder {
  param: string;
  /** Path of the string, e.g. `steps[0].job.env.DATE`. */
  field: string;
}

/** Every placeholder in the string values of `body` (object keys are never substituted), in document order. */
export function placeholdersOf(body: unknown, root = ''): Placeholder[] {
  const out: Placeholder[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      for (const m of v.matchAll(PLACEHOLDER)) out.push({ param: m[1], field: path });
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${path}[${i}]`));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    }
  };
  walk(body, root);
  return out;
}

/** A deep copy of `body` with each `{{params.<name>}}` in its string values replaced by `values[name]` (left as is when absent). */
export function substituteParams<T>(body: T, values: Readonly<Record<string, string>>): T {
  const sub = (v: unknown): unknown => {
    if (typeof v === 'string') return v.includes('{{') ? v.replace(PLACEHOLDER, (m, name: string) => (Object.hasOwn(values, name) ? values[name] : m)) : v;
    if (Array.isArray(v)) return v.map(sub);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, sub(x)]));
    return v;
  };
  return sub(body) as T;
}

/**
 * The bytes of `jsonBytes(substituteParams(body, values))`, worked out without building it: each
 * placeholder adds its value's escaped bytes and takes away its own (JSON escapes character by
 * character, so a string's escaped length is the sum of its parts'). A template of 512 KiB holds
 * some 40,000 placeholders; with values of 1,024 characters the body would be ~40 MB, built only
 * to be refused.
 */
export function substitutedBytes(body: unknown, values: Readonly<Record<string, string>>): number {
  const escaped = new Map<string, number>();
  const esc = (x: string): number => {
    let n = escaped.get(x);
    if (n === undefined) escaped.set(x, (n = Buffer.byteLength(JSON.stringify(x)) - 2));
    return n;
  };
  let delta = 0;
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      if (v.includes('{{')) for (const m of v.matchAll(PLACEHOLDER)) if (Object.hasOwn(values, m[1])) delta += esc(values[m[1]]) - esc(m[0]);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(body);
  return jsonBytes(body) + delta;
}

/** True when `value` matches `pattern` (RE2) whole, in time linear in the value. */
export function matchesPattern(value: string, pattern: string): boolean {
  return RE2JS.compile(pattern).matches(value);
}

/**
 * Checks a template as put: each default matches its pattern, and every placeholder of the
 * workflow names a declared parameter.
 * @throws ApiError `unknown_parameter` naming the string's field (`workflow.steps[0].job.env.DATE`); `invalid_argument` naming `parameters.<name>.default`
 */
export function checkTemplate(parameters: Readonly<Record<string, TemplateParameter>>, workflow: Record<string, unknown>): void {
  for (const [name, p] of Object.entries(parameters)) {
    if (p.default !== undefined && p.pattern !== undefined && !matchesPattern(p.default, p.pattern)) {
      throw new ApiError(ErrorCode.InvalidArgument, `parameters.${name}.default: "${p.default}" does not match its pattern ${p.pattern}`, {
        field: `parameters.${name}.default`,
      });
    }
  }
  for (const ph of placeholdersOf(workflow, 'workflow')) {
    if (!Object.hasOwn(parameters, ph.param)) {
      throw new ApiError(
        ErrorCode.UnknownParameter,
        `${ph.field}: {{params.${ph.param}}} names no declared parameter; declare it under "parameters" or fix the name`,
        { field: ph.field },
      );
    }
  }
}

/**
 * Values that stand for each parameter when a template is validated at put: its default, else
 * `sample` (the workflow must be valid with them; a run's own values are validated again).
 */
export function sampleParams(parameters: Readonly<Record<string, TemplateParameter>>, sample = 'sample'): Record<string, string> {
  return Object.fromEntries(Object.entries(parameters).map(([k, p]) => [k, p.default ?? sample]));
}

/**
 * The values of a run: those given, and the defaults of the others.
 * @param root - prefix of the fields named in errors. @default "params."
 * @throws ApiError `unknown_parameter` (a given name the template does not declare), `missing_parameter` (no value and no default), `invalid_argument` (a value that does not match its pattern), each naming `params.<name>`
 */
export function resolveParams(
  parameters: Readonly<Record<string, TemplateParameter>>,
  given: Readonly<Record<string, string>>,
  root = 'params.',
): Record<string, string> {
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(parameters, name)) {
      const declared = Object.keys(parameters);
      throw new ApiError(
        ErrorCode.UnknownParameter,
        `${root}${name}: the template declares no such parameter (it has ${declared.length ? declared.join(', ') : 'none'})`,
        { field: `${root}${name}` },
      );
    }
  }
  const out: Record<string, string> = {};
  for (const [name, p] of Object.entries(parameters)) {
    const v = Object.hasOwn(given, name) ? given[name] : p.default;
    if (v === undefined) {
      throw new ApiError(ErrorCode.MissingParameter, `${root}${name}: the template's parameter has no default; give a value`, { field: `${root}${name}` });
    }
    if (p.pattern !== undefined && !matchesPattern(v, p.pattern)) {
      throw new ApiError(ErrorCode.InvalidArgument, `${root}${name}: "${v}" does not match the parameter's pattern ${p.pattern}`, { field: `${root}${name}` });
    }
    out[name] = v;
  }
  return out;
}

/**
 * The record after a put of `version` content (pure): a new version numbered one past the latest
 * when its content differs from the latest's, else the record unchanged (`changed: false`: a
 * repeated put is idempotent). Keeps at most `MAX_TEMPLATE_VERSIONS` versions and at most
 * `MAX_WORKFLOW_TEMPLATE_RECORD_BYTES` bytes, dropping the oldest (the new one always stays).
 */
export function putTemplateVersion(
  cur: WorkflowTemplateRecord | undefined,
  id: { tenant: string; name: string },
  content: Pick<WorkflowTemplateVersion, 'description' | 'parameters' | 'workflow'>,
  now: number,
): { record: WorkflowTemplateRecord; changed: boolean } {
  const latest = cur?.versions[cur.versions.length - 1];
  if (latest && sameContent(latest, content)) return { record: cur!, changed: false };
  const v: WorkflowTemplateVersion = {
    version: (latest?.version ?? 0) + 1,
    ...(content.description !== undefined ? { description: content.description } : {}),
    parameters: content.parameters,
    workflow: content.workflow,
    createdAt: now,
  };
  const versions = [...(cur?.versions ?? []), v].slice(-MAX_TEMPLATE_VERSIONS);
  const record: WorkflowTemplateRecord = { name: id.name, tenant: id.tenant, createdAt: cur?.createdAt ?? now, versions };
  while (record.versions.length > 1 && jsonBytes(record) > MAX_WORKFLOW_TEMPLATE_RECORD_BYTES) record.versions.shift();
  return { record, changed: true };
}

function sameContent(a: Pick<WorkflowTemplateVersion, 'description' | 'parameters' | 'workflow'>, b: typeof a): boolean {
  const c = (x: typeof a) => canonicalJson({ description: x.description ?? null, parameters: x.parameters, workflow: x.workflow });
  return c(a) === c(b);
}

/**
 * The workflow body of a run of version `v` of template `name` (pure): the values resolved and
 * substituted, and the two labels of a template's run added.
 * @throws ApiError `unknown_parameter`, `missing_parameter`, `invalid_argument` naming `params.<name>`; `payload_too_large` naming `params`
 */
export function templateRunBody(
  name: string,
  v: WorkflowTemplateVersion,
  given: Readonly<Record<string, string>>,
  root = 'params.',
): { body: Record<string, unknown>; params: Record<string, string> } {
  const params = resolveParams(v.parameters, given, root);
  const tooLarge = () => {
    const field = root.replace(/\.$/, '');
    return new ApiError(
      ErrorCode.PayloadTooLarge,
      `${field}: the workflow with these values is over ${MAX_TEMPLATE_RUN_BYTES} bytes of JSON; pass shorter values`,
      {
        field,
      },
    );
  };
  // Sized before it is built: a body far over the bound is never made.
  if (substitutedBytes(v.workflow, params) > MAX_TEMPLATE_RUN_BYTES) throw tooLarge();
  const wf = substituteParams(v.workflow, params);
  const labels = wf.labels;
  const body = {
    ...wf,
    ...(labels === undefined || (typeof labels === 'object' && labels !== null && !Array.isArray(labels))
      ? { labels: { ...(labels as Record<string, string> | undefined), [TEMPLATE_LABEL]: name, [TEMPLATE_VERSION_LABEL]: String(v.version) } }
      : {}),
  };
  if (jsonBytes(body) > MAX_TEMPLATE_RUN_BYTES) throw tooLarge();
  return { body, params };
}

/**
 * A schedule's parameter values for one tick (pure): `{{schedule.date}}` becomes the tick's date
 * in the schedule's zone (`2026-12-01`), `{{schedule.time}}` its time there in ISO 8601 with the
 * zone's offset (`2026-12-01T02:00:00+01:00`).
 */
export function scheduleParams(params: Readonly<Record<string, string>>, tick: number, timeZone: string): Record<string, string> {
  const { date, time } = zonedIso(tick, timeZone);
  const sub = (v: string) => v.replace(/\{\{\s*schedule\.date\s*\}\}/g, () => date).replace(/\{\{\s*schedule\.time\s*\}\}/g, () => time);
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, sub(v)]));
}

/** `tick` (epoch ms) in `timeZone`: its date, and its time in ISO 8601 with the offset. */
export function zonedIso(tick: number, timeZone: string): { date: string; time: string } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
      .formatToParts(new Date(tick))
      .map((p) => [p.type, p.value]),
  );
  const date = `${parts.year}-${parts.month}-${parts.day}`;
  const local = `${date}T${parts.hour}:${parts.minute}:${parts.second}`;
  // the offset: the zone's wall time read as UTC, less the instant (whole seconds)
  const offsetMin = Math.round((Date.parse(`${local}Z`) - Math.floor(tick / 1000) * 1000) / 60000);
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  const offset = offsetMin === 0 ? 'Z' : `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return { date, time: `${local}${offset}` };
}
