import { ApiError, type StepPhase } from '@batchapi/api';
import {
  dependenciesWithInputs,
  INPUTS_TOKEN_MARGIN_MS,
  INPUTS_TOKEN_MAX_TTL_MS,
  inputsTokenAllows,
  inputsTokenExpiry,
  type InputSource,
  mintInputsToken,
  readInputsToken,
  resolveInputs,
} from './inputs';

describe('resolveInputs', () => {
  // prep (one task) ran as job j-prep; shards is a fan-out that ran as j-sh; empty fanned out over nothing (no job);
  // old was reused from an earlier run (its job is that run's); skipped never ran.
  const steps: InputSource[] = [
    { name: 'prep', jobId: 'j-prep' },
    { name: 'shards', jobId: 'j-sh', map: { items: [1, 2] } },
    { name: 'empty', map: { fromStep: 'prep' } },
    { name: 'old', jobId: 'wf0-s3' },
    { name: 'skipped' },
    { name: 'reader', inputs: ['shards', 'prep', 'empty', 'old', 'skipped'] },
    { name: 'none' },
  ];
  const phases: Record<string, StepPhase> = {
    prep: 'Succeeded',
    shards: 'Succeeded',
    empty: 'Succeeded',
    old: 'Succeeded',
    skipped: 'Skipped',
    reader: 'Pending',
    none: 'Pending',
  };

  it.each<[string, number, ReturnType<typeof resolveInputs>]>([
    [
      // in the order `inputs` names them, each with the job holding its results (null: none) and whether it is a fan-out
      'every kind of input',
      5,
      [
        { step: 'shards', jobId: 'j-sh', map: true, phase: 'Succeeded' },
        { step: 'prep', jobId: 'j-prep', map: false, phase: 'Succeeded' },
        { step: 'empty', jobId: null, map: true, phase: 'Succeeded' },
        { step: 'old', jobId: 'wf0-s3', map: false, phase: 'Succeeded' },
        { step: 'skipped', jobId: null, map: false, phase: 'Skipped' },
      ],
    ],
    ['a step without inputs', 6, []],
  ])('%s', (_n, i, want) => {
    expect(resolveInputs(steps, i, phases)).toEqual(want);
  });
});

describe('dependenciesWithInputs', () => {
  it.each<[string, Parameters<typeof dependenciesWithInputs>[0], string[][]]>([
    [
      'an input is a dependency too, once',
      [{ name: 'a' }, { name: 'b', dependsOn: ['a'], inputs: ['a'] }, { name: 'c', inputs: ['b', 'a'] }],
      [[], ['a'], ['b', 'a']],
    ],
    ['dependencies first, then inputs', [{ name: 'a' }, { name: 'b' }, { name: 'c', dependsOn: ['b'], inputs: ['a'] }], [[], [], ['b', 'a']]],
  ])('%s', (_n, steps, want) => {
    expect(dependenciesWithInputs(steps)).toEqual(want);
  });

  it.each<[string, Parameters<typeof dependenciesWithInputs>[0], string, string]>([
    ['an unknown step', [{ name: 'a' }, { name: 'b', inputs: ['a', 'nope'] }], 'unknown_input_step', 'steps[1].inputs[1]'],
    ['the step itself', [{ name: 'a', inputs: ['a'] }], 'unknown_input_step', 'steps[0].inputs[0]'],
    ['a name given twice', [{ name: 'a' }, { name: 'b', inputs: ['a', 'a'] }], 'invalid_argument', 'steps[1].inputs[1]'],
  ])('refuses %s, naming the field', (_n, steps, code, field) => {
    let err: unknown;
    try {
      dependenciesWithInputs(steps);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe(code);
    expect((err as ApiError).details.field).toBe(field);
  });
});

describe('inputs tokens', () => {
  const key = Buffer.alloc(32, 7);
  const now = 1_000_000_000_000;
  const claims = { tenant: 'team-a', workflowId: 'wf-1', expiresAt: now + 60_000 };
  const token = mintInputsToken(key, claims);

  it('is printable, short and read back by the same key', () => {
    expect(token).toMatch(/^bsi1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(token.length).toBeLessThan(512);
    expect(readInputsToken(key, token, now)).toEqual(claims);
  });

  it.each<[string, string, number, 'invalid' | 'expired']>([
    ['another key', mintInputsToken(Buffer.alloc(32, 8), claims), now, 'invalid'],
    // the claims edited (another workflow) with the old signature
    [
      'edited claims',
      token.replace(/^bsi1\.[^.]+/, `bsi1.${Buffer.from(JSON.stringify({ t: 'team-a', w: 'wf-2', x: now + 60_000 })).toString('base64url')}`),
      now,
      'invalid',
    ],
    ['a user token', 'abc', now, 'invalid'],
    ['no signature', 'bsi1.abc', now, 'invalid'],
    // expiresAt = now + 60 s: at that instant it is expired
    ['its expiry', token, now + 60_000, 'expired'],
  ])('refuses %s', (_n, t, at, why) => {
    expect(readInputsToken(key, t, at)).toBe(why);
  });

  it.each<[string, { deadlineAt?: number }, number]>([
    // deadline + 1 h margin
    ['a workflow with a deadline', { deadlineAt: now + 3_600_000 }, now + 3_600_000 + INPUTS_TOKEN_MARGIN_MS],
    // 30 days from minting + 1 h margin
    ['a workflow without one', {}, now + INPUTS_TOKEN_MAX_TTL_MS + INPUTS_TOKEN_MARGIN_MS],
  ])('expires for %s at its end plus the margin', (_n, wf, want) => {
    expect(inputsTokenExpiry(wf, now)).toBe(want);
  });

  const wf = { id: 'wf-1', tenant: 'team-a', steps: [{ jobId: 'wf-1-s0' }, { jobId: 'wf0-s2' }, {}] };
  it.each<[string, Parameters<typeof inputsTokenAllows>[1], string | undefined, number, ReturnType<typeof inputsTokenAllows>]>([
    ['its workflow', wf, undefined, now, 'ok'],
    ["a step's job", wf, 'wf-1-s0', now, 'ok'],
    ['a job a step reuses (an earlier run)', wf, 'wf0-s2', now, 'ok'],
    ['a job no step names', wf, 'wf-9-s0', now, 'not_found'],
    ['another workflow', { ...wf, id: 'wf-2' }, undefined, now, 'not_found'],
    ["the same id as another tenant's", { ...wf, tenant: 'team-b' }, undefined, now, 'not_found'],
    ['an unknown workflow', undefined, 'wf-1-s0', now, 'not_found'],
    // ended at now; the margin is 1 h: readable until now + 1 h, not at it
    ['a workflow that ended within the margin', { ...wf, finishedAt: now }, 'wf-1-s0', now + INPUTS_TOKEN_MARGIN_MS - 1, 'ok'],
    ['a workflow that ended over the margin ago', { ...wf, finishedAt: now }, 'wf-1-s0', now + INPUTS_TOKEN_MARGIN_MS, 'expired'],
  ])('reads %s: %s', (_n, w, jobId, at, want) => {
    expect(inputsTokenAllows(claims, w, jobId, at)).toBe(want);
  });
});
