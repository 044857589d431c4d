import { resultsDigest, type StepCacheInput, stepCacheKey } from './cache-key';

/** A Python step as the SDK makes it: the runner, the function's identity and its arguments in env. */
const base: StepCacheInput = {
  spec: {
    command: ['python3', '-m', 'batchapi.run'],
    env: { BATCH_PY_CALL: 'etl:train', BATCH_PY_ARGS: '{"args":[1],"kwargs":{"lr":0.1,"epochs":3}}', BATCH_API: 'http://a', BATCH_TOKEN: 't1' },
    tasks: 1,
    workingDir: { digest: 'sha256:aaa' },
    python: { requirements: ['numpy==2.1.0'], digest: 'sha256:req1' },
  },
  inputs: { prep: { phase: 'Succeeded', results: resultsDigest([{ index: 0, value: [1, 2, 3] }]) } },
  cacheVersion: 'v1',
};
const key = stepCacheKey(base);
/** The same step reading `prep` as its input, as the controller submits it in one run. */
const reading = (jobId: string, token: string): StepCacheInput => ({
  ...base,
  spec: {
    ...base.spec,
    env: { ...base.spec.env, BATCH_INPUTS: JSON.stringify([{ step: 'prep', jobId, map: false, phase: 'Succeeded' }]), BATCH_INPUTS_TOKEN: token },
  },
});
const withSpec = (spec: Partial<StepCacheInput['spec']>): StepCacheInput => ({ ...base, spec: { ...base.spec, ...spec } });

describe('stepCacheKey', () => {
  it.each<[string, StepCacheInput]>([
    // The inputs of the computation: each of these is a different computation, so a different key.
    ['another function', withSpec({ env: { ...base.spec.env, BATCH_PY_CALL: 'etl:evaluate' } })],
    ['another argument', withSpec({ env: { ...base.spec.env, BATCH_PY_ARGS: '{"args":[2],"kwargs":{"lr":0.1,"epochs":3}}' } })],
    ['another command', withSpec({ command: ['python3.12', '-m', 'batchapi.run'] })],
    ['another working dir (the code changed)', withSpec({ workingDir: { digest: 'sha256:bbb' } })],
    ['no working dir', withSpec({ workingDir: undefined })],
    ['another Python environment', withSpec({ python: { requirements: ['numpy==2.2.0'], digest: 'sha256:req2' } })],
    ['another image', withSpec({ image: 'registry/etl:2' })],
    ['more tasks', withSpec({ tasks: 2 })],
    ['other fan-out items', withSpec({ items: [1, 2] })],
    [
      'another upstream result (prep returned [1,2,4])',
      { ...base, inputs: { prep: { phase: 'Succeeded', results: resultsDigest([{ index: 0, value: [1, 2, 4] }]) } } },
    ],
    ['an upstream step that failed instead', { ...base, inputs: { prep: { ...base.inputs.prep, phase: 'Failed' } } }],
    ['the same results from an upstream step of another name', { ...base, inputs: { load: base.inputs.prep } }],
    ['another cacheVersion (invalidation)', { ...base, cacheVersion: 'v2' }],
    [
      'reading another input (BATCH_INPUTS names another step)',
      withSpec({ env: { ...base.spec.env, BATCH_INPUTS: '[{"step":"load","jobId":"j1","map":false}]' } }),
    ],
    ['no cacheVersion', { ...base, cacheVersion: undefined }],
  ])('changes with %s', (_n, input) => {
    expect(stepCacheKey(input)).not.toBe(key);
  });

  it.each<[string, StepCacheInput]>([
    // Key order of any object: canonical JSON sorts keys, so these are the same JSON.
    ['env given in another key order', withSpec({ env: Object.fromEntries(Object.entries(base.spec.env).reverse()) })],
    [
      'the spec and the input given in another key order',
      { cacheVersion: 'v1', inputs: base.inputs, spec: Object.fromEntries(Object.entries(base.spec).reverse()) as StepCacheInput['spec'] },
    ],
    // Keyword arguments in another order: BATCH_PY_ARGS is compared as parsed JSON.
    ['keyword arguments given in another order', withSpec({ env: { ...base.spec.env, BATCH_PY_ARGS: '{"kwargs":{"epochs":3,"lr":0.1},"args":[1]}' } })],
    // Not inputs of the computation.
    ['another token and API address (BATCH_TOKEN, BATCH_API are left out)', withSpec({ env: { ...base.spec.env, BATCH_TOKEN: 't2', BATCH_API: 'http://b' } })],
    [
      'requirements listed otherwise with the same digest (the digest is of their normal form)',
      withSpec({ python: { requirements: ['numpy == 2.1.0'], digest: 'sha256:req1' } }),
    ],
    [
      'an upstream result produced by another attempt',
      { ...base, inputs: { prep: { phase: 'Succeeded', results: resultsDigest([{ index: 0, attempt: 3, value: [1, 2, 3] } as never]) } } },
    ],
  ])('stays the same with %s', (_n, input) => {
    expect(stepCacheKey(input)).toBe(key);
  });

  it('is the same for a step reading its inputs in two runs (other jobs, other tokens: only the step names and kinds count)', () => {
    expect(stepCacheKey(reading('wf1-s0', 'bsi1.a'))).toBe(stepCacheKey(reading('wf2-s0', 'bsi1.b')));
    expect(stepCacheKey(reading('wf1-s0', 'bsi1.a'))).not.toBe(key);
  });

  it('is a hex SHA-256', () => {
    expect(key).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('resultsDigest', () => {
  it.each([
    // Index order decides, not the order given: both are [a, b].
    [
      'the same results in another order',
      [
        { index: 1, value: 'b' },
        { index: 0, value: 'a' },
      ],
      [
        { index: 0, value: 'a' },
        { index: 1, value: 'b' },
      ],
      true,
    ],
    // Object keys inside a value do not matter.
    ['a value with its keys in another order', [{ index: 0, value: { x: 1, y: 2 } }], [{ index: 0, value: { y: 2, x: 1 } }], true],
    // A result kept in the blob store counts by its digest, not its size.
    ['references with one digest', [{ index: 0, ref: { sizeBytes: 1, sha256: 'f' } }], [{ index: 0, ref: { sizeBytes: 2, sha256: 'f' } }], true],
    ['another value', [{ index: 0, value: 1 }], [{ index: 0, value: 2 }], false],
    // The same values at other indices are other results (task 1 returned nothing in the second).
    ['a value at another index', [{ index: 0, value: 1 }], [{ index: 1, value: 1 }], false],
    ['no results and one null result', [], [{ index: 0, value: null }], false],
  ])('%s', (_n, a, b, same) => {
    expect(resultsDigest(a) === resultsDigest(b)).toBe(same);
  });
});
