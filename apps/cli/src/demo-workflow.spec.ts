import { parseWith, SubmitWorkflowSchema, type WorkflowView } from '@batchapi/api';
import { dagLine, DEMO_SHARDS, demoTotal, demoWorkflow } from './demo-workflow';

describe('the demo workflow', () => {
  it('is a workflow the API takes: prepare (retried once) → count (a map over the shards) → reduce', () => {
    const req = parseWith(SubmitWorkflowSchema, demoWorkflow('/tmp/demo'));
    expect(req.steps.map((s) => [s.name, s.dependsOn ?? []])).toEqual([
      ['prepare', []],
      ['count', ['prepare']],
      ['reduce', ['count']],
    ]);
    expect(req.steps[0].job.retry).toMatchObject({ maxAttempts: 2 });
    expect(req.steps[1].map).toEqual({ items: [0, 1, 2, 3] });
    expect(req.steps.every((s) => s.job.env?.DEMO_DIR === '/tmp/demo')).toBe(true);
  });

  it('sums to 938,750', () => {
    // shard i holds 1 … 250(i + 1): n(n + 1)/2 for n = 250, 500, 750, 1000 → 31,375 + 125,250 + 281,625 + 500,500
    expect(DEMO_SHARDS).toBe(4);
    expect(demoTotal()).toBe(938_750);
  });
});

describe('dagLine', () => {
  const view = (phases: string[], phase: string): WorkflowView =>
    ({
      id: 'wf-1',
      name: 'demo-shards',
      tenant: 'default',
      queue: 'default',
      labels: {},
      phase,
      createdAt: 0,
      finishedAt: null,
      deadlineAt: null,
      steps: ['prepare', 'count', 'reduce'].map((name, i) => ({
        name,
        phase: phases[i],
        jobId: phases[i] === 'Pending' ? null : `j-${i}`,
        dependsOn: i ? [['prepare', 'count'][i - 1]] : [],
        ...(name === 'count' ? { map: { items: 4 } } : {}),
      })),
    }) as WorkflowView;

  it.each([
    ['nothing started', ['Pending', 'Pending', 'Pending'], 'Pending', new Map(), '· prepare → · count → · reduce   (Pending)'],
    [
      'the map under way, its tasks counted',
      ['Succeeded', 'Running', 'Pending'],
      'Running',
      new Map([['j-1', { done: 2, of: 4 }]]),
      '✓ prepare → ▶ count [2/4] → · reduce   (Running)',
    ],
    ['a failure and a skip', ['Failed', 'Skipped', 'Skipped'], 'Failed', new Map(), '✗ prepare → – count → – reduce   (Failed)'],
  ])('%s', (_case, phases, phase, ended, line) => expect(dagLine(view(phases, phase), ended)).toBe(line));
});
