/**
 * The etcd key layout. Every key BatchAPI writes is built here; `docs/architecture.md`
 * describes each prefix and who writes it.
 */

/** Builds keys under one root prefix (default `/batch/`), so clusters can share an etcd. */
export class Keys {
  constructor(readonly root = '/batch/') {}
  tenant(name: string) {
    return `${this.root}tenants/${name}`;
  }
  tenants() {
    return `${this.root}tenants/`;
  }
  queue(name: string) {
    return `${this.root}queues/${name}`;
  }
  queues() {
    return `${this.root}queues/`;
  }
  job(id: string) {
    return `${this.root}jobs/${id}`;
  }
  jobs() {
    return `${this.root}jobs/`;
  }
  /** The job id of a `job(id)` key; undefined for any other key. */
  jobIdOfJob(key: string): string | undefined {
    return segmentAfter(this.jobs(), key);
  }
  /** Idempotency record of a submit: tenant plus a digest of the client's key. */
  idempotency(tenant: string, keyDigest: string) {
    return `${this.root}idempotency/${tenant}/${keyDigest}`;
  }
  idempotencyAll() {
    return `${this.root}idempotency/`;
  }
  /** Status of a bound task range at one attempt, kept after it ends (each attempt has its own). */
  group(jobId: string, start: number, attempt: number) {
    return `${this.root}groups/${jobId}/${pad(start)}/${attempt}`;
  }
  groupsOf(jobId: string) {
    return `${this.root}groups/${jobId}/`;
  }
  /** A live run order for one node: one range of one job at one attempt. */
  binding(node: string, jobId: string, start: number, attempt: number) {
    return `${this.root}bindings/${node}/${jobId}/${pad(start)}/${attempt}`;
  }
  bindingsOf(node: string) {
    return `${this.root}bindings/${node}/`;
  }
  bindings() {
    return `${this.root}bindings/`;
  }
  /** A workflow: its DAG, each step's phase and job id. */
  workflow(id: string) {
    return `${this.root}workflows/${id}`;
  }
  workflows() {
    return `${this.root}workflows/`;
  }
  /** The workflow id of a `workflow(id)` key; undefined for any other key. */
  workflowIdOf(key: string): string | undefined {
    return segmentAfter(this.workflows(), key);
  }
  /** A schedule (cron job or cron workflow) of a tenant: its template, ticks and instances. */
  schedule(tenant: string, name: string) {
    return `${this.root}schedules/${tenant}/${name}`;
  }
  schedules() {
    return `${this.root}schedules/`;
  }
  schedulesOf(tenant: string) {
    return `${this.root}schedules/${tenant}/`;
  }
  /** A workflow template of a tenant: its latest versions. */
  workflowTemplate(tenant: string, name: string) {
    return `${this.root}workflow-templates/${tenant}/${name}`;
  }
  workflowTemplates() {
    return `${this.root}workflow-templates/`;
  }
  workflowTemplatesOf(tenant: string) {
    return `${this.root}workflow-templates/${tenant}/`;
  }
  /** A semaphore record by its id (`semaphoreRecordId`: `<tenant>/<name>`, or `global/<name>`). */
  semaphore(id: string) {
    return `${this.root}semaphores/${id}`;
  }
  semaphores() {
    return `${this.root}semaphores/`;
  }
  /** A task's small JSON result (the last attempt that reported one). */
  result(jobId: string, index: number) {
    return `${this.root}results/${jobId}/${pad(index)}`;
  }
  resultsOf(jobId: string) {
    return `${this.root}results/${jobId}/`;
  }
  node(name: string) {
    return `${this.root}nodes/${name}`;
  }
  nodes() {
    return `${this.root}nodes/`;
  }
  alloc(node: string) {
    return `${this.root}alloc/${node}`;
  }
  /** An operator's cordon (and drain) of a node; outlives the executor's lease. */
  cordon(node: string) {
    return `${this.root}cordons/${node}`;
  }
  cordons() {
    return `${this.root}cordons/`;
  }
  allocs() {
    return `${this.root}alloc/`;
  }
  /** The node name of an `alloc(node)` key; undefined for any other key. */
  nodeOfAlloc(key: string): string | undefined {
    return segmentAfter(this.allocs(), key);
  }
  /** A tenant's shared token bucket (`kind`: submits or tasks). */
  bucket(tenant: string, kind: string) {
    return `${this.root}throttle/${tenant}/${kind}`;
  }
  /** Each queue's decayed usage, written by the scheduler leader so a successor continues it. */
  usage() {
    return `${this.root}usage`;
  }
  /** GPU-seconds by hour of each queue and tenant over the last 24 h (`gpuHoursPerDay`), written by the scheduler leader so a successor continues it. */
  gpuUsage() {
    return `${this.root}gpu-usage`;
  }
  /** Runtime estimates per queue learned from the history (`RuntimeEstimates`), written by the archiver, read by the scheduler. */
  runtimeEstimates() {
    return `${this.root}runtime-estimates`;
  }
  /** The scheduler leader's cluster-wide placement settings (`SchedulerSettings`), read by admission's "why pending" when no scheduler answers. */
  schedulerSettings() {
    return `${this.root}scheduler-settings`;
  }
  /** The scheduler leader's defragmentation nominations in force (`DefragmentRecord`), read by standbys' and admission's "why pending". */
  defragmenting() {
    return `${this.root}defragmenting`;
  }
  /** The archiver's last count of finished jobs etcd still holds (`ArchiveBacklog`): admission pauses submits past a limit. */
  archiveBacklog() {
    return `${this.root}archive/backlog`;
  }
  /** The key whose create revision fences a leader's writes. */
  leader(role: string) {
    return `${this.root}leaders/${role}`;
  }
  /** Liveness of every service process, bound to its lease. */
  member(service: string, id: string) {
    return `${this.root}members/${service}/${id}`;
  }
  members() {
    return `${this.root}members/`;
  }
  /** Members of one service. */
  membersOf(service: string) {
    return `${this.root}members/${service}/`;
  }
}

/**
 * The one path segment of `key` after `prefix`; undefined for a key outside the prefix, the
 * prefix itself, or a key deeper under it (ids and node names never hold a "/").
 */
function segmentAfter(prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  return rest === '' || rest.includes('/') ? undefined : rest;
}

/** Task indices are zero-padded so keys sort in task order. */
function pad(n: number): string {
  return String(n).padStart(10, '0');
}
