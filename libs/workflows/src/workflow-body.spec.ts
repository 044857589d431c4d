import { ApiError } from '@batchapi/api';
import { readWorkflowBody } from './workflow-body';

const job = (extra: Record<string, unknown> = {}) => ({ command: ['true'], resources: { cpu: '100m', memory: '16Mi' }, ...extra });

describe('readWorkflowBody', () => {
  it('reads the steps as a record holds them: defaults, critical paths, every queue used', () => {
    const w = readWorkflowBody(
      {
        queue: 'batch',
        steps: [
          { name: 'a', job: job() },
          { name: 'b', dependsOn: ['a'], job: job({ queue: 'gpu' }), cache: true, cacheVersion: 'v2' },
          { name: 'c', dependsOn: ['b'], when: 'always', map: { items: [1, 2] }, job: job({ tasks: 9 }) },
        ],
      },
      'wf-1',
    );
    expect([w.queue, w.queues]).toEqual(['batch', ['batch', 'gpu']]);
    // a → b → c: paths of 3, 2 and 1 steps
    expect(w.steps.map((s) => [s.name, s.criticalPath, s.when, s.phase])).toEqual([
      ['a', 3, 'success', 'Pending'],
      ['b', 2, 'success', 'Pending'],
      ['c', 1, 'always', 'Pending'],
    ]);
    expect(w.steps[1]).toMatchObject({ cache: true, cacheVersion: 'v2', dependsOn: ['a'] });
    expect(w.steps[2].map).toEqual({ items: [1, 2] });
  });

  it.each([
    ['not an object', [], '', 'invalid_argument', '(body)'],
    ['not an object, under a root', 'x', 'template.', 'invalid_argument', 'template'],
    ['a step job with a tenant', { steps: [{ name: 'a', job: job({ tenant: 't' }) }] }, '', 'invalid_argument', 'steps[0].job.tenant'],
    [
      'a bad quantity, under a root',
      { steps: [{ name: 'a', job: job({ resources: { cpu: 'lots' } }) }] },
      'workflow.',
      'invalid_argument',
      'workflow.steps[0].job.resources.cpu',
    ],
    ['a cycle, under a root', { steps: [{ name: 'a', dependsOn: ['a'], job: job() }] }, 'template.', 'workflow_cycle', 'template.steps[0].dependsOn'],
    ['a cacheVersion without cache', { steps: [{ name: 'a', cacheVersion: 'x', job: job() }] }, '', 'invalid_argument', 'steps[0].cacheVersion'],
  ])('refuses %s, naming the field', (_case, body, root, code, field) => {
    let err: unknown;
    try {
      readWorkflowBody(body, 'wf-1', root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect([(err as ApiError).code, (err as ApiError).details.field]).toEqual([code, field]);
  });
});
