/**
 * `normalizeSubmit` is `parseSubmit` without the schema check, for bodies validated before (a
 * workflow step's job, checked at the workflow's submit): on a valid body it gives the same job,
 * and it keeps every check across fields and of size.
 */
import { normalizeSubmit, parseSubmit, type SubmitJobRequest } from './schemas';

const entries = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, k) => [`K${k}`, value]));

describe('normalizeSubmit', () => {
  it.each([
    ['a bare job (every default filled in)', { command: ['true'] }],
    [
      'a step job as the workflow controller makes it',
      { command: ['true'], queue: 'q', env: { A: '1' }, labels: { 'batch.workflow': 'wf-1', 'batch.step': 's' }, resources: { cpu: '100m', memory: '16Mi' } },
    ],
    ['a map (tasks from items)', { command: ['x'], items: [1, 2, 3], resources: { cpu: '2', memory: '1Gi' } }],
    [
      'a gang with a limit and retries',
      { command: ['x'], tasks: 4, gang: true, maxRunning: 4, priority: 5, retry: { maxAttempts: 3, backoffSeconds: 1 }, timeoutSeconds: 60 },
    ],
  ])('gives what parseSubmit gives for %s', (_name, body) => {
    expect(normalizeSubmit(body as SubmitJobRequest)).toEqual(parseSubmit(body));
  });

  it.each([
    // [what, body, status, code, field]
    // 3 items but tasks 2
    ['items and tasks that differ', { command: ['x'], items: [1, 2, 3], tasks: 2 }, 400, 'invalid_argument', 'items'],
    ['empty items', { command: ['x'], items: [] }, 400, 'invalid_argument', 'items'],
    // 2 × 180,000 bytes of "é" = 360,004 bytes of JSON > 256 KiB
    ['items of 360 KB', { command: ['x'], items: ['é'.repeat(90_000), 'é'.repeat(90_000)] }, 400, 'invalid_argument', 'items'],
    // a gang of 4 tasks that may run only 2 at once would never start
    ['maxRunning below a gang', { command: ['x'], tasks: 4, gang: true, maxRunning: 2 }, 422, 'max_running_below_gang', 'maxRunning'],
    // 30 × 32,000 = 960,000 bytes of env: the record is over 384 KiB (393,216)
    ['a record over the cap', { command: ['x'], env: entries(30, 'x'.repeat(32_000)) }, 413, 'payload_too_large', 'env'],
  ])('still refuses %s', (_name, body, status, code, field) => {
    expect(() => normalizeSubmit(body as SubmitJobRequest)).toThrow(
      expect.objectContaining({ name: 'ApiError', status, code, details: expect.objectContaining({ field }) }),
    );
  });
});
