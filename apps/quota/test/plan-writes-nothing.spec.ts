/** `planWritesNothing`: a reconcile's record equals the one it started from unless a field a reconcile sets changed. */
import type { StepCached, WorkflowRecord } from '@batchapi/api';
import { planWritesNothing } from '../src/workflow-controller';

const record = (over: Partial<WorkflowRecord> = {}, step: Partial<WorkflowRecord['steps'][number]> = {}): WorkflowRecord =>
  ({
    id: 'wf1',
    name: 'nightly',
    tenant: 't',
    queue: 'q',
    labels: {},
    phase: 'Running',
    createdAt: 1,
    steps: [
      { name: 'a', dependsOn: [], when: 'success', job: { command: ['true'] }, criticalPath: 1, phase: 'Succeeded', jobId: 'j-a' },
      { name: 'b', dependsOn: ['a'], when: 'success', job: { command: ['true'] }, criticalPath: 1, phase: 'Pending', ...step },
    ],
    ...over,
  }) as unknown as WorkflowRecord;

describe('planWritesNothing', () => {
  const cached: StepCached = { reason: 'retry', workflowId: 'wf0', jobId: 'j-old' };
  it.each([
    { name: 'the same record, rebuilt', next: record(), same: true },
    { name: 'a step started (phase)', next: record({}, { phase: 'Running' }), same: false },
    { name: 'a step got its job', next: record({}, { jobId: 'j-b' }), same: false },
    { name: 'a step got its cache key', next: record({}, { cacheKey: 'k' }), same: false },
    { name: 'a step reused a cached result', next: record({}, { cached }), same: false },
    { name: 'the run ended (phase)', next: record({ phase: 'Succeeded' }), same: false },
    { name: 'the run ended (finishedAt)', next: record({ finishedAt: 9 }), same: false },
  ])('$name → $same', ({ next, same }) => {
    expect(planWritesNothing(record(), next)).toBe(same);
    // the answer the serialized comparison it replaces gives
    expect(JSON.stringify(next) === JSON.stringify(record())).toBe(same);
  });

  it('compares a cached result by content, not identity (a reconcile copies it)', () => {
    const was = record({}, { cached: { ...cached } });
    expect(planWritesNothing(was, record({}, { cached: { ...cached } }))).toBe(true);
    expect(planWritesNothing(was, record({}, { cached: { ...cached, jobId: 'j-other' } }))).toBe(false);
  });
});
