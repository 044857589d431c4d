/**
 * The phases of the workflow step jobs etcd holds (jobs labelled `batch.workflow`): an index the
 * quota service keeps from the jobs informer it already runs (the admitter's), so the workflow
 * controller follows every step job through that one watch. It used to open a watch per running
 * workflow over its step jobs: with 1,000 runs, 1,000 watches, and every job event decoded twice
 * in this process (`bench pipelines`: ~12% of quota's event loop went to watch events).
 *
 * A listener hears which workflow's step job changed phase in a way its step sees (a job's end); the
 * controller reads the phases here.
 * A deleted job leaves the index. The archiver removes only jobs whose workflow has ended;
 * retention removes any job finished longer ago than `BATCH_JOB_RETENTION` (7 days), by when its
 * phase was long since read (a step whose job is gone reads as Running until its deadline).
 */
import { type JobPhase, type JobRecord, WORKFLOW_LABEL } from '@batchapi/api';
import { stepPhaseOfJob } from '@batchapi/workflows';
import { Injectable } from '@nestjs/common';

@Injectable()
export class StepJobs {
  private readonly phases = new Map<string, JobPhase>();
  private readonly listeners = new Set<(workflowId: string) => void>();

  /** Each step job's phase, by job id. */
  get byId(): ReadonlyMap<string, JobPhase> {
    return this.phases;
  }

  /** Calls `listener` with the workflow whose step job changed its step's phase (see `put`); returns the unsubscribe. */
  onChange(listener: (workflowId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Replaces the index with a listing's jobs; every workflow with a step job in it is told. */
  sync(jobs: Iterable<JobRecord>): void {
    this.phases.clear();
    const workflows = new Set<string>();
    for (const j of jobs) {
      const wf = j.spec.labels[WORKFLOW_LABEL];
      if (!wf) continue;
      this.phases.set(j.id, j.phase);
      workflows.add(wf);
    }
    for (const wf of workflows) this.tell(wf);
  }

  /**
   * A job was written (`job` its new value) or deleted (`job` undefined). The workflow is told only
   * when the job's phase changes what its step reads (`stepPhaseOfJob`: a step is `Running` from its
   * job's creation until the job ends), so a step job's admission and first bind wake no reconcile:
   * the plan (`advance`) reads the jobs only through that mapping.
   */
  put(id: string, job: JobRecord | undefined): void {
    if (!job) {
      this.phases.delete(id);
      return;
    }
    const wf = job.spec.labels[WORKFLOW_LABEL];
    if (!wf) return;
    const was = this.phases.get(id);
    if (was === job.phase) return;
    this.phases.set(id, job.phase);
    if (stepPhaseOfJob(was) !== stepPhaseOfJob(job.phase)) this.tell(wf);
  }

  private tell(workflowId: string): void {
    for (const l of this.listeners) l(workflowId);
  }
}
