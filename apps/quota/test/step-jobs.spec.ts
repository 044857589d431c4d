/**
 * The step jobs' index (`StepJobs`) tells the workflow controller of a job's change only when it
 * changes what the job's step reads (`stepPhaseOfJob`): its end. A step is `Running` from its job's
 * creation until the job ends, so the job's admission and first bind plan nothing and wake no
 * reconcile (three tells a step became one).
 */
import { type JobPhase, type JobRecord, WORKFLOW_LABEL } from '@batchapi/api';
import { StepJobs } from '../src/step-jobs';

const job = (id: string, phase: JobPhase, workflow = 'wf-1'): JobRecord =>
  ({
    id,
    tenant: 't',
    queue: 'default',
    phase,
    spec: { labels: workflow ? { [WORKFLOW_LABEL]: workflow } : {} },
    pending: [],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
    createdAt: 0,
  }) as unknown as JobRecord;

describe('StepJobs.put', () => {
  it.each([
    // [the job's phases as the informer delivers them, the workflows told after each]
    // created admitted, bound, ended: only the end changes the step (Running → Succeeded)
    { phases: ['Queued', 'Running', 'Succeeded'], told: [[], [], ['wf-1']] },
    // created Submitted (not admitted at create): Submitted, Queued and Running all read Running
    { phases: ['Submitted', 'Queued', 'Running', 'Failed'], told: [[], [], [], ['wf-1']] },
    // first seen already ended (a fast job, or events merged): told at once
    { phases: ['Succeeded'], told: [['wf-1']] },
    // Rejected reads Failed: told
    { phases: ['Submitted', 'Rejected'], told: [[], ['wf-1']] },
    // the same phase again (a count update of a running map) tells nothing
    { phases: ['Running', 'Running', 'Cancelled', 'Cancelled'], told: [[], [], ['wf-1'], []] },
  ])('$phases → $told', ({ phases, told }) => {
    const index = new StepJobs();
    let heard: string[] = [];
    index.onChange((wf) => heard.push(wf));
    phases.forEach((p, i) => {
      heard = [];
      index.put('j1', job('j1', p as JobPhase));
      expect(heard).toEqual(told[i]);
      // the phase is kept whether or not the workflow was told (the plan reads it)
      expect(index.byId.get('j1')).toBe(p);
    });
  });

  it('tells nothing for a job of no workflow, and forgets a deleted job without telling', () => {
    const index = new StepJobs();
    const heard: string[] = [];
    index.onChange((wf) => heard.push(wf));
    index.put('j2', job('j2', 'Succeeded', ''));
    expect(index.byId.has('j2')).toBe(false);
    index.put('j1', job('j1', 'Succeeded'));
    index.put('j1', undefined);
    expect(index.byId.has('j1')).toBe(false);
    expect(heard).toEqual(['wf-1']);
  });
});
