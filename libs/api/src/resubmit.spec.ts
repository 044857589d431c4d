import { MAX_LABELS } from './limits';
import type { JobRecord } from './model';
import { RESUBMITTED_FROM_LABEL, resubmitBody } from './resubmit';
import { SCHEDULE_LABEL } from './schedule';
import { parseSubmit } from './schemas';
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
});
