import { MAX_LABELS } from './limits';
import type { JobRecord } from './model';
import { RESUBMITTED_FROM_LABEL, resubmitBody, ResubmitSchema } from './resubmit';
import { SCHEDULE_LABEL } from './schedule';
import { parseSubmit, parseWith } from './schemas';
import { STEP_LABEL, WORKFLOW_LABEL } from './workflow';

/** A stored job made from a submit body, as admission stores it. */
function stored(body: Record<string, unknown>, id = 'j-1'): JobRecord {
  const { spec, queue, tenant } = parseSubmit(body);
  return { id, tenant: tenant ?? 'team-a', queue, spec, phase: 'Failed', pending: [], counts: { succeeded: 0, failed: 1, cancelled: 0 }, createdAt: 0 };
}

describe('resubmitBody', () => {
  const rich = {
    name: 'train',
    command: ['python3', '-m', 'train'],
    env: { API_TOKEN: 'secret-value', LR: '0.1' },
    resources: { cpu: '1500m', memory: '4Gi', gpu: 0.5 },
    tasks: 3,
    priority: 7,
    labels: { team: 'ml' },
    selector: { 'gpu.model': 'A100' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' }],
    gang: true,
    gangTimeoutSeconds: 120,
    spread: true,
    topology: { preferred: 'rack' },
    timeoutSeconds: 3600,
    image: 'python:3.12',
    retry: { maxAttempts: 3, backoffSeconds: 2 },
    items: [{ shard: 0 }, { shard: 1 }, { shard: 2 }],
    queue: 'gpu',
    tenant: 'team-a',
  };

  it.each([
    // [case, body of the first submit, labels the new job gets]
    ['every field of a rich submit, secrets as stored', rich, { team: 'ml', [RESUBMITTED_FROM_LABEL]: 'j-1' }],
    ['a plain submit (defaults filled in)', { command: ['true'] }, { [RESUBMITTED_FROM_LABEL]: 'j-1' }],
    [
      "a workflow step: the step's labels dropped",
      { command: ['true'], labels: { team: 'x', [WORKFLOW_LABEL]: 'wf-1', [STEP_LABEL]: 'a' } },
      { team: 'x', [RESUBMITTED_FROM_LABEL]: 'j-1' },
    ],
    [
      "a schedule's run: the schedule's label dropped",
      { command: ['true'], labels: { [SCHEDULE_LABEL]: 'nightly', env: 'prod' } },
      { env: 'prod', [RESUBMITTED_FROM_LABEL]: 'j-1' },
    ],
    [
      'a resubmit of a resubmit: labelled with the latest',
      { command: ['true'], labels: { [RESUBMITTED_FROM_LABEL]: 'j-0' } },
      { [RESUBMITTED_FROM_LABEL]: 'j-1' },
    ],
  ])('%s: parses back to the same spec, tenant and queue', (_case, body, labels) => {
    const job = stored(body as Record<string, unknown>);
    const again = parseSubmit(resubmitBody(job));
    expect(again.spec).toEqual({ ...job.spec, labels });
    expect(again.queue).toBe(job.queue);
    expect(again.tenant).toBe(job.tenant);
  });

  it('adds no label to a job that has MAX_LABELS of its own (64 + 1 would be refused)', () => {
    const labels = Object.fromEntries(Array.from({ length: MAX_LABELS }, (_, i) => [`l${i}`, 'v']));
    const again = parseSubmit(resubmitBody(stored({ command: ['true'], labels })));
    expect(again.spec.labels).toEqual(labels);
  });

  it.each([
    // [case, changes, what differs from the first job's spec, queue]
    ['a new priority', { priority: -5 }, { priority: -5 }, 'gpu'],
    ['another queue', { queue: 'cpu' }, {}, 'cpu'],
    // cpu 1500m → 4000 millicores; memory and gpu (500 milli-GPUs) stay
    ['more CPU, the rest of the resources kept', { resources: { cpu: '4' } }, { resources: { cpu: 4000, memory: 4 * 1024 ** 3, gpu: 500 } }, 'gpu'],
    [
      'a variable changed and one added, the secret kept',
      { env: { LR: '0.01', DEBUG: '1' } },
      { env: { API_TOKEN: 'secret-value', LR: '0.01', DEBUG: '1' } },
      'gpu',
    ],
    ['a label added', { labels: { try: '2' } }, { labels: { team: 'ml', try: '2', [RESUBMITTED_FROM_LABEL]: 'j-1' } }, 'gpu'],
  ])('%s: the changes over the first job’s spec', (_case, changes, differs, queue) => {
    const job = stored(rich);
    const again = parseSubmit(resubmitBody(job, parseWith(ResubmitSchema, changes)));
    expect(again.spec).toEqual({ ...job.spec, labels: { team: 'ml', [RESUBMITTED_FROM_LABEL]: 'j-1' }, ...differs });
    expect(again.queue).toBe(queue);
  });

  it.each([
    ['a field a resubmit cannot change', { tasks: 5 }, 'tasks'],
    ['a priority out of range', { priority: 5000 }, 'priority'],
    ['a queue that is no name', { queue: 'No Queue' }, 'queue'],
  ])('refuses %s, naming the field', (_case, body, field) => {
    expect(() => parseWith(ResubmitSchema, body)).toThrow(expect.objectContaining({ details: expect.objectContaining({ field }) }));
  });
});
