import { ApiError } from './errors';
import { parseWith } from './schemas';
import { jsonBytes } from './limits';
import {
  checkTemplate,
  matchesPattern,
  MAX_TEMPLATE_VERSIONS,
  MAX_WORKFLOW_TEMPLATE_RECORD_BYTES,
  placeholdersOf,
  PutWorkflowTemplateSchema,
  putTemplateVersion,
  resolveParams,
  RunWorkflowTemplateSchema,
  sampleParams,
  scheduleParams,
  substituteParams,
  substitutedBytes,
  templateRunBody,
  type WorkflowTemplateVersion,
  zonedIso,
  type TemplateParameter,
  type WorkflowTemplateRecord,
  workflowTemplateView,
} from './workflow-template';

const nightly = {
  name: 'nightly-{{params.date}}',
  steps: [
    { name: 'extract', job: { command: ['./extract.sh', '--date', '{{params.date}}'], env: { DATE: '{{ params.date }}', REGION: '{{params.region}}' } } },
    { name: 'load', dependsOn: ['extract'], job: { command: ['./load.sh', '{{params.region}}/{{params.date}}.csv'], tasks: 2 } },
  ],
};
const params: Record<string, TemplateParameter> = {
  date: { pattern: '\\d{4}-\\d{2}-\\d{2}', description: 'the day to process' },
  region: { default: 'eu' },
};

/** The code and field of the ApiError `f` throws. */
function failure(f: () => unknown): { code: string; field?: string } {
  try {
    f();
  } catch (err) {
    if (err instanceof ApiError) return { code: err.code, field: err.details.field };
    throw err;
  }
  throw new Error('did not throw');
}

describe('placeholdersOf', () => {
  it.each([
    ['a plain string has none', 'x', []],
    ['one in a string', 'a-{{params.d}}', [{ param: 'd', field: '' }]],
    [
      'two in one string, spaces inside the braces',
      '{{ params.a }}{{params.b}}',
      [
        { param: 'a', field: '' },
        { param: 'b', field: '' },
      ],
    ],
    ['other braces are not placeholders', '{{schedule.date}} {params.x} {{params}}', []],
    ['numbers and booleans are never substituted', { tasks: 3, gang: true }, []],
  ])('%s', (_case, body, want) => {
    expect(placeholdersOf(body)).toEqual(want);
  });

  it('names each string by its path: arrays by index, objects by key (keys are not searched)', () => {
    expect(placeholdersOf(nightly, 'workflow')).toEqual([
      { param: 'date', field: 'workflow.name' },
      { param: 'date', field: 'workflow.steps[0].job.command[2]' },
      { param: 'date', field: 'workflow.steps[0].job.env.DATE' },
      { param: 'region', field: 'workflow.steps[0].job.env.REGION' },
      { param: 'region', field: 'workflow.steps[1].job.command[1]' },
      { param: 'date', field: 'workflow.steps[1].job.command[1]' },
    ]);
    expect(placeholdersOf({ env: { '{{params.k}}': 'v' } })).toEqual([]);
  });
});

describe('substituteParams', () => {
  it('replaces every placeholder in every string, leaves the rest, and does not change its input', () => {
    const before = JSON.stringify(nightly);
    const out = substituteParams(nightly, { date: '2026-12-01', region: 'us' });
    expect(out.name).toBe('nightly-2026-12-01');
    expect(out.steps[0].job.command).toEqual(['./extract.sh', '--date', '2026-12-01']);
    expect(out.steps[0].job.env).toEqual({ DATE: '2026-12-01', REGION: 'us' });
    expect(out.steps[1].job).toEqual({ command: ['./load.sh', 'us/2026-12-01.csv'], tasks: 2 });
    expect(out.steps[1].dependsOn).toEqual(['extract']);
    expect(JSON.stringify(nightly)).toBe(before);
  });

  it.each([
    ['a value with "$&" and "$1" is inserted literally (no replacement patterns)', '{{params.a}}', { a: '$&-$1' }, '$&-$1'],
    ['a value holding a placeholder is not substituted again', '{{params.a}}', { a: '{{params.b}}', b: 'no' }, '{{params.b}}'],
    ['a name without a value is left as is', '{{params.zzz}}', {}, '{{params.zzz}}'],
    ['quotes and backslashes stay as they are', 'x={{params.a}}', { a: 'say "hi" \\ ok' }, 'x=say "hi" \\ ok'],
  ])('%s', (_case, s, values, want) => {
    expect(substituteParams(s, values)).toBe(want);
  });
});

describe('substitutedBytes', () => {
  it.each([
    ['the values of nightly', nightly, { date: '2026-12-01', region: 'us' }],
    ['quotes, backslashes and a newline escape', nightly, { date: 'say "hi" \\ ok\n', region: 'é€😀' }],
    ['a name without a value stays', { a: '{{params.zzz}} and {{params.date}}' }, { date: 'x' }],
    ['nothing to substitute', { a: ['b', 1, null, { c: true }] }, { date: 'x' }],
  ])('%s: the bytes of the substituted body, without building it', (_case, body, values) => {
    expect(substitutedBytes(body, values)).toBe(jsonBytes(substituteParams(body, values)));
  });

  it('refuses a run whose values would take the body over the bound (sized by substitutedBytes)', () => {
    // 600 placeholders × a 1,024-character value ≈ 600 KiB + 600 KiB of escapes (each `"` doubles) > 1 MiB
    const v: WorkflowTemplateVersion = {
      version: 1,
      createdAt: 0,
      parameters: { a: {} },
      workflow: { name: 'w', steps: [{ name: 's', job: { command: Array.from({ length: 600 }, () => '{{params.a}}') } }] },
    };
    expect(() => templateRunBody('t', v, { a: '"'.repeat(1024) })).toThrow(/params: the workflow with these values is over 1048576 bytes/);
  });
});

describe('checkTemplate', () => {
  it.each([
    ['every placeholder declared', params, nightly, undefined],
    [
      'an undeclared placeholder is unknown_parameter naming its string',
      { date: {} },
      nightly,
      { code: 'unknown_parameter', field: 'workflow.steps[0].job.env.REGION' },
    ],
    [
      'an empty name is unknown too',
      {},
      { steps: [{ name: 's', job: { command: ['{{params.}}'] } }] },
      { code: 'unknown_parameter', field: 'workflow.steps[0].job.command[0]' },
    ],
    [
      'a default that does not match its pattern',
      { d: { default: 'today', pattern: '\\d+' } },
      {},
      { code: 'invalid_argument', field: 'parameters.d.default' },
    ],
  ])('%s', (_case, p, wf, want) => {
    if (want === undefined) expect(() => checkTemplate(p, wf)).not.toThrow();
    else expect(failure(() => checkTemplate(p, wf))).toEqual(want);
  });
});

describe('resolveParams', () => {
  it.each([
    ['given values, and defaults for the others', { date: '2026-12-01' }, { date: '2026-12-01', region: 'eu' }],
    ['a given value overrides the default', { date: '2026-12-01', region: 'us' }, { date: '2026-12-01', region: 'us' }],
    ['a parameter without a default is required', { region: 'us' }, { code: 'missing_parameter', field: 'params.date' }],
    ['an undeclared one is unknown', { date: '2026-12-01', zone: 'x' }, { code: 'unknown_parameter', field: 'params.zone' }],
    // the pattern is anchored: "2026-12-01x" has a match inside it, but is not one whole
    ['a value must match its pattern whole', { date: '2026-12-01x' }, { code: 'invalid_argument', field: 'params.date' }],
    ['an empty value is a value (no default used)', { date: '2026-12-01', region: '' }, { date: '2026-12-01', region: '' }],
  ])('%s', (_case, given, want) => {
    if ('code' in want) expect(failure(() => resolveParams(params, given))).toEqual(want);
    else expect(resolveParams(params, given)).toEqual(want);
  });

  it('names fields from its root (a schedule names template.params.<name>)', () => {
    expect(failure(() => resolveParams(params, {}, 'template.params.'))).toEqual({ code: 'missing_parameter', field: 'template.params.date' });
  });

  it('samples: the default, else a placeholder value', () => {
    expect(sampleParams(params)).toEqual({ date: 'sample', region: 'eu' });
  });
});

describe('the request schemas', () => {
  it.each([
    ['a parameter name with a dot', { workflow: {}, parameters: { 'a.b': {} } }, 'parameters.a.b'],
    ['a parameter name starting with a digit', { workflow: {}, parameters: { '1a': {} } }, 'parameters.1a'],
    ['51 parameters', { workflow: {}, parameters: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`p${i}`, {}])) }, 'parameters'],
    ['a pattern that does not compile', { workflow: {}, parameters: { a: { pattern: '(' } } }, 'parameters.a.pattern'],
    ['a pattern with a backreference (not RE2)', { workflow: {}, parameters: { a: { pattern: '(a)\\1' } } }, 'parameters.a.pattern'],
    ['a pattern with a lookahead (not RE2)', { workflow: {}, parameters: { a: { pattern: '(?=a)a' } } }, 'parameters.a.pattern'],
    ['a default over 1024 characters', { workflow: {}, parameters: { a: { default: 'x'.repeat(1025) } } }, 'parameters.a.default'],
    ['an unknown field', { workflow: {}, extra: 1 }, 'extra'],
  ])('PUT refuses %s', (_case, body, field) => {
    expect(failure(() => parseWith(PutWorkflowTemplateSchema, body))).toEqual({ code: 'invalid_argument', field });
  });

  it.each([
    ['a number as a value', { params: { a: 1 } }, 'params.a'],
    ['a value with a newline', { params: { a: 'x\ny' } }, 'params.a'],
    ['version 0', { version: 0 }, 'version'],
  ])('a run refuses %s', (_case, body, field) => {
    expect(failure(() => parseWith(RunWorkflowTemplateSchema, body))).toEqual({ code: 'invalid_argument', field });
  });
});

describe('putTemplateVersion', () => {
  const id = { tenant: 'team-a', name: 'nightly' };
  const v = (n: number) => ({ parameters: {}, workflow: { steps: [{ name: 's', job: { command: ['echo', String(n)] } }] } });

  it('numbers versions 1, 2, …; the same content again (keys in any order) changes nothing', () => {
    const first = putTemplateVersion(undefined, id, v(1), 1000);
    expect(first.changed).toBe(true);
    expect(first.record.versions.map((x) => x.version)).toEqual([1]);
    const same = putTemplateVersion(first.record, id, { workflow: v(1).workflow, parameters: {} }, 2000);
    expect(same).toEqual({ record: first.record, changed: false });
    const second = putTemplateVersion(first.record, id, v(2), 3000);
    expect(second.record.versions.map((x) => [x.version, x.createdAt])).toEqual([
      [1, 1000],
      [2, 3000],
    ]);
    expect(second.record.createdAt).toBe(1000);
    // a description is content too
    expect(putTemplateVersion(second.record, id, { ...v(2), description: 'd' }, 4000).changed).toBe(true);
  });

  it(`keeps the latest ${MAX_TEMPLATE_VERSIONS} versions; the numbers go on`, () => {
    let rec: WorkflowTemplateRecord | undefined;
    for (let n = 1; n <= MAX_TEMPLATE_VERSIONS + 5; n++) rec = putTemplateVersion(rec, id, v(n), n).record;
    // 25 puts, 20 kept: versions 6..25
    expect(rec!.versions.map((x) => x.version)).toEqual(Array.from({ length: MAX_TEMPLATE_VERSIONS }, (_, i) => i + 6));
    expect(workflowTemplateView(rec!)!.version).toBe(25);
    expect(workflowTemplateView(rec!, 6)!.workflow).toEqual(v(6).workflow);
    expect(workflowTemplateView(rec!, 5)).toBeUndefined();
  });

  it('drops the oldest versions past the record byte bound, never the new one', () => {
    // each version ~150 KiB: three fit in 512 KiB (~450), a fourth (~600) does not
    const big = (n: number) => ({ parameters: {}, workflow: { steps: [{ name: 's', job: { command: ['echo', String(n).repeat(150 * 1024)] } }] } });
    let rec: WorkflowTemplateRecord | undefined;
    for (let n = 1; n <= 5; n++) rec = putTemplateVersion(rec, id, big(n), n).record;
    expect(rec!.versions.map((x) => x.version)).toEqual([3, 4, 5]);
    expect(JSON.stringify(rec).length).toBeLessThanOrEqual(MAX_WORKFLOW_TEMPLATE_RECORD_BYTES);
  });
});

describe('scheduleParams', () => {
  const tick = Date.UTC(2026, 11, 1, 1, 30); // 2026-12-01T01:30:00Z
  it.each([
    ['UTC', { date: '2026-12-01', time: '2026-12-01T01:30:00Z' }],
    // UTC+1 in winter: 02:30 the same day
    ['Europe/Berlin', { date: '2026-12-01', time: '2026-12-01T02:30:00+01:00' }],
    // UTC-8: 17:30 the day before
    ['America/Los_Angeles', { date: '2026-11-30', time: '2026-11-30T17:30:00-08:00' }],
    // UTC+5:45
    ['Asia/Kathmandu', { date: '2026-12-01', time: '2026-12-01T07:15:00+05:45' }],
  ])('the tick in %s', (tz, want) => {
    expect(zonedIso(tick, tz)).toEqual(want);
  });

  it('fills {{schedule.date}} and {{schedule.time}} in every value, and leaves the rest', () => {
    expect(scheduleParams({ date: '{{schedule.date}}', at: 'run-{{ schedule.time }}', region: 'eu', p: '{{params.x}}' }, tick, 'Europe/Berlin')).toEqual({
      date: '2026-12-01',
      at: 'run-2026-12-01T02:30:00+01:00',
      region: 'eu',
      p: '{{params.x}}',
    });
  });
});

describe('matchesPattern (RE2: linear in the value)', () => {
  it.each([
    // [pattern, value, matches]: the whole value must match
    ['[0-9]{4}-[0-9]{2}-[0-9]{2}', '2026-12-01', true],
    ['[0-9]{4}-[0-9]{2}-[0-9]{2}', '2026-12-01x', false],
    ['eu|us', 'eu', true],
    ['eu|us', 'eus', false],
  ])('%s against %s: %s', (pattern, value, want) => {
    expect(matchesPattern(value, pattern)).toBe(want);
  });

  it.each(['((a)+)+', '(a|a)+', '(a+)+', 'a*a*a*a*a*a*a*b?c'])(
    'answers %s against 1,024 characters that almost match, which a backtracking engine takes exponential (or high polynomial) time on',
    (pattern) => {
      // 1,024 a's then a b: every one of these patterns fails on the b after trying the a's every way a backtracking engine would
      expect(matchesPattern(`${'a'.repeat(1024)}b`, pattern)).toBe(false);
    },
  );
});
