/**
 * The Kubernetes backend: each attempt runs as a Pod through `@kubernetes/client-node`, and
 * everything else is as with processes: leases, fencing, batched reports, outcomes. Two
 * shapes:
 * - per Kubernetes node (`kubeNode` set; an executor per node, e.g. a DaemonSet): the
 *   BatchAPI node is that Kubernetes node — its allocatable resources, GPUs and labels — and
 *   each pod is bound to it by `nodeName`, so BatchAPI bin-packs and places, as it does
 *   with processes;
 * - the whole cluster as one node (`kubeNode` unset): the sum of every schedulable node's
 *   allocatable resources, and the kube-scheduler places each pod within the cluster (a
 *   task larger than any one Kubernetes node then waits in `Pending`).
 * BatchAPI decides what runs, when and against which quota. Pod states come
 * from the client library's informer (list, then watch from the list's resource version;
 * a lost watch resumes, an expired one lists again), so an ended pod is seen at once.
 */
import { createWriteStream, mkdirSync, type WriteStream, writeFileSync } from 'node:fs';
import { Transform } from 'node:stream';
import { type Binding, CONTAINER_RUNTIME_LABEL, GPU_MILLI, type GpuDevice, parseCpu, parseMemory, type ResourceVector } from '@batchapi/api';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AttemptExit, RunningAttempt } from './attempt-backend';
import type { attemptPaths } from './task-process';
import type { CpuLimit } from './isolation';

/** Settings of the Kubernetes backend. */
export interface KubernetesBackendConfig {
  /** Namespace of the task pods (`BATCH_K8S_NAMESPACE`). @default "batchapi-tasks" */
  namespace: string;
  /** Image of tasks whose job names none (`BATCH_TASK_IMAGE`). @default "busybox:1.36" */
  image: string;
  /** Wait before watching again after the pod watch failed (API server unreachable, forbidden), in milliseconds (`BATCH_K8S_REWATCH_MS`). @default 1000 */
  rewatchMs: number;
  /** API server URL (`BATCH_K8S_SERVER`) with `token` (http:// only for a local `kubectl proxy`); absent: in-cluster service account, else the kubeconfig. @default none */
  server?: string;
  /** Bearer token for `server` (`BATCH_K8S_TOKEN`). @default none */
  token?: string;
  /** The Kubernetes node this executor stands for (`BATCH_K8S_NODE`); unset: the whole cluster as one node. @default none */
  kubeNode?: string;
  /** How a task's CPU request limits its pod (`BATCH_CPU_LIMIT`): `soft`, a CPU request and no CPU limit; `hard`, a CPU limit equal to the request. Memory and devices are always limits. @default "soft" */
  cpuLimit?: CpuLimit;
}

/** A pod's requests as its limits when CPU is not limited (`CpuLimit` `soft`). */
function withoutCpu(requests: Record<string, string>): Record<string, string> {
  const { cpu: _cpu, ...rest } = requests;
  return rest;
}

/** Labels of every task pod. */
export const POD_LABELS = {
  job: 'batchapi.io/job',
  task: 'batchapi.io/task',
  attempt: 'batchapi.io/attempt',
  tenant: 'batchapi.io/tenant',
  node: 'batchapi.io/node',
} as const;

/** Pod-level reasons of a failed pod that are the node's doing (pressure eviction, shutdown, lost node, admission), whatever its container's state. */
const NODE_REASONS = new Set(['Evicted', 'Shutdown', 'NodeShutdown', 'Terminated', 'NodeLost', 'NodeAffinity', 'UnexpectedAdmissionError', 'Preempting']);
/** Kubelet refusals for room in a resource BatchAPI models (others — OutOfpods, ephemeral storage — are plain node errors). */
const NODE_FULL_REASONS = new Set(['OutOfcpu', 'OutOfmemory', 'OutOfnvidia.com/gpu']);
/** The API server ends a watch after this long (the informer resumes it), so a silently dead connection is noticed. In seconds. */
const WATCH_TIMEOUT_SECONDS = 300;
/** How many settled pods' names are remembered, so their late events are not taken for a previous executor's pods. */
const SETTLED_MEMORY = 1000;
/** How many times a log follow that the server closed early (the container still running) is started again. */
const FOLLOW_RETRIES = 5;

/** Container waiting reasons that mean the attempt can never start (the job's image or spec). */
const FATAL_WAITING = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

interface Watched {
  name: string;
  stopping: boolean;
  /** Its end was seen: logs are being copied; a later delete event is ours. */
  collecting?: boolean;
  /** The live copy of the pod's log into the attempt's stdout file, from when it runs: resolves true once complete. */
  following?: { done: Promise<boolean>; stop: () => void };
  /** Its end was seen in a pod event (the container is not running any more). */
  ended?: boolean;
  resolve: (e: AttemptExit) => void;
  paths: ReturnType<typeof attemptPaths>;
}

/**
 * The Kubernetes client, loaded only by executors that run pods: loading it took 0.9 s of every
 * executor's start (of ~2.3 s), and most nodes run processes (`BATCH_EXECUTOR_BACKEND=process`).
 *
 * The load is synchronous and blocks the event loop, so an executor that runs pods calls this
 * before it takes its process lease (`startExecutor`): a load after the grant could outlast the
 * lease's TTL on a busy machine, and the executor would fence itself before it registered.
 * Calls after the first return the loaded module (Node's module cache).
 */
export function loadKubernetesClient(): typeof k8s {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, see above
  return require('@kubernetes/client-node') as typeof k8s;
}

export class KubernetesBackend {
  private readonly k8s = loadKubernetesClient();
  private readonly core: k8s.CoreV1Api;
  private readonly kc = new this.k8s.KubeConfig();
  private readonly watched = new Map<string, Watched>();
  private informer?: k8s.Informer<k8s.V1Pod> & k8s.ObjectCache<k8s.V1Pod>;
  private rewatch?: NodeJS.Timeout;
  /** Pods of a previous executor of this node, deleted once (forgotten when their delete is seen). */
  private readonly leftovers = new Set<string>();
  /** Pods of attempts this executor settled, newest last: their late events are not left-overs. */
  private readonly settled = new Set<string>();

  constructor(
    private readonly cfg: KubernetesBackendConfig,
    private readonly nodeName: string,
    private readonly log: Logger,
  ) {
    const kc = this.kc;
    if (cfg.server) {
      kc.loadFromOptions({
        // Plain http (a local `kubectl proxy`, or tests) has no TLS to verify; https is always verified.
        clusters: [{ name: 'batch', server: cfg.server, skipTLSVerify: cfg.server.startsWith('http://') }],
        users: [{ name: 'batch', ...(cfg.token ? { token: cfg.token } : {}) }],
        contexts: [{ name: 'batch', cluster: 'batch', user: 'batch' }],
        currentContext: 'batch',
      });
    } else kc.loadFromDefault();
    this.core = kc.makeApiClient(this.k8s.CoreV1Api);
  }

  /**
   * The node's inventory: the Kubernetes node's allocatable resources less what the pods on it
   * that are not BatchAPI's request (DaemonSets, system pods, this executor: the kubelet counts
   * them), its GPUs and labels; or (the whole cluster as one node) the sum of allocatable over
   * every schedulable node. Starts watching this node's pods.
   */
  async inventory(): Promise<{ capacity: ResourceVector; gpus: GpuDevice[]; labels: Record<string, string> }> {
    this.watchPods();
    const nodes = this.cfg.kubeNode
      ? [await this.core.readNode({ name: this.cfg.kubeNode })]
      : (await this.core.listNode()).items.filter((n) => !n.spec?.unschedulable);
    const capacity: ResourceVector = { cpu: 0, memory: 0 };
    let gpuCount = 0;
    let model: string | undefined;
    for (const n of nodes) {
      const a = n.status?.allocatable ?? {};
      if (a.cpu) capacity.cpu += parseCpu(a.cpu, `node ${n.metadata?.name} cpu`);
      if (a.memory) capacity.memory += parseMemory(a.memory, `node ${n.metadata?.name} memory`);
      const g = Number(a['nvidia.com/gpu'] ?? 0);
      if (g > 0) {
        gpuCount += g;
        model ??= n.metadata?.labels?.['nvidia.com/gpu.product'];
      }
    }
    if (this.cfg.kubeNode) {
      const foreign = await this.foreignRequests(this.cfg.kubeNode);
      capacity.cpu = Math.max(0, capacity.cpu - foreign.cpu);
      capacity.memory = Math.max(0, capacity.memory - foreign.memory);
      gpuCount = Math.max(0, gpuCount - Math.ceil((foreign.gpu ?? 0) / GPU_MILLI));
    }
    if (gpuCount > 0) capacity.gpu = gpuCount * GPU_MILLI;
    const gpus: GpuDevice[] = Array.from({ length: gpuCount }, (_, index) => ({ index, model: model ?? 'nvidia.com/gpu', memoryMiB: 0, uuid: `k8s-${index}` }));
    // One Kubernetes node: its labels too, so job selectors match what they would in Kubernetes.
    const own = this.cfg.kubeNode ? (nodes[0].metadata?.labels ?? {}) : {};
    // Each task runs in its job's image (a pod): jobs that name one may come here.
    return {
      capacity,
      gpus,
      labels: { ...own, 'batchapi.io/backend': 'kubernetes', [CONTAINER_RUNTIME_LABEL]: 'kubernetes', ...(model ? { 'gpu.model': model } : {}) },
    };
  }

  /** What the live pods on a Kubernetes node that are not BatchAPI's request. */
  private async foreignRequests(node: string): Promise<ResourceVector> {
    const pods = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    const sum: ResourceVector = { cpu: 0, memory: 0, gpu: 0 };
    for (const pod of pods.items) {
      if (pod.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'batchapi') continue; // task pods: BatchAPI's own allocations count them
      if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      let r: ResourceVector;
      try {
        r = podRequests(pod);
      } catch (err) {
        this.log.warn(
          { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, err: (err as Error).message },
          'could not read what a pod on this node requests; left out of the capacity',
        );
        continue;
      }
      sum.cpu += r.cpu;
      sum.memory += r.memory;
      sum.gpu! += r.gpu ?? 0;
    }
    return sum;
  }

  /** Creates the attempt's pod; its outcome comes from the pod's phase and container state. */
  start(b: Binding, index: number, env: Record<string, string>, paths: ReturnType<typeof attemptPaths>): RunningAttempt {
    const name = podName(b.jobId, index, b.attempt);
    let resolve!: (e: AttemptExit) => void;
    const exited = new Promise<AttemptExit>((r) => {
      resolve = r;
    });
    const w: Watched = { name, stopping: false, resolve, paths };
    /** `remember`: its pod's late events are ours (not a previous executor's left-over). */
    const settle = (e: AttemptExit, remember = true) => {
      if (!this.watched.delete(name)) return;
      w.following?.stop();
      if (remember) this.settled.add(name);
      if (this.settled.size > SETTLED_MEMORY) this.settled.delete(this.settled.values().next().value!);
      resolve(e);
    };
    w.resolve = settle;
    this.watched.set(name, w);
    this.watchPods();
    this.core.createNamespacedPod({ namespace: this.cfg.namespace, body: this.podSpec(b, index, env, name) }).then(
      // Created: its states come from the watch; one that ended before the watch knew it is in the informer's cache.
      () => {
        const pod = this.informer?.get(name, this.cfg.namespace);
        if (pod) void this.observe(pod);
      },
      // A create that failed on our side (a timeout, a reset) may still have made the pod: not
      // remembered as settled, so if it shows up it is deleted as a left-over, not left running beside the retry.
      (err: Error) => settle({ exitCode: 126, nodeError: `could not create pod ${name}: ${errorText(err)}` }, false),
    );
    const remove = (graceSeconds: number) => {
      w.stopping = true;
      this.core
        .deleteNamespacedPod({ name, namespace: this.cfg.namespace, gracePeriodSeconds: graceSeconds })
        .catch((err: Error) => this.log.warn({ pod: name, err: errorText(err) }, 'deleting a task pod failed'));
    };
    return { exited, stop: (graceMs) => remove(Math.ceil(graceMs / 1000)), kill: () => remove(0) };
  }

  /** Stops watching and following logs; pods of running attempts are left to their deadlines (their executor is going away). */
  close(): void {
    clearTimeout(this.rewatch);
    for (const w of this.watched.values()) w.following?.stop();
    void this.informer?.stop();
    this.informer = undefined;
  }

  private podSpec(b: Binding, index: number, env: Record<string, string>, name: string): k8s.V1Pod {
    const requests: Record<string, string> = {};
    for (const [r, v] of Object.entries(b.resources)) {
      if (r === 'cpu') requests.cpu = `${v}m`;
      else if (r === 'memory') requests.memory = String(v);
      else if (r === 'gpu')
        requests['nvidia.com/gpu'] = String(Math.ceil(v / GPU_MILLI)); // a share of a GPU takes one whole device here
      else requests[r] = String(v);
    }
    const { CUDA_VISIBLE_DEVICES: _devices, ...taskEnv } = env; // the device plugin assigns devices on Kubernetes
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: this.cfg.namespace,
        labels: {
          [POD_LABELS.job]: b.jobId,
          [POD_LABELS.task]: String(index),
          [POD_LABELS.attempt]: String(b.attempt),
          [POD_LABELS.tenant]: b.tenant,
          [POD_LABELS.node]: this.nodeName,
          'app.kubernetes.io/managed-by': 'batchapi',
        },
      },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        ...(b.timeoutSeconds ? { activeDeadlineSeconds: b.timeoutSeconds } : {}),
        // Per node, BatchAPI placed the task: bound to the node directly, as a scheduler binds.
        ...(this.cfg.kubeNode ? { nodeName: this.cfg.kubeNode } : {}),
        ...(b.selector ? { nodeSelector: b.selector } : {}),
        containers: [
          {
            name: 'task',
            image: b.image ?? this.cfg.image,
            command: b.command,
            env: Object.entries(taskEnv).map(([k, value]) => ({ name: k, value })),
            // Memory and devices are limits as well as requests; CPU only when its limit is `hard` (see `CpuLimit`).
            resources: { requests, limits: this.cfg.cpuLimit === 'hard' ? requests : withoutCpu(requests) },
          },
        ],
      },
    };
  }

  /** Starts the informer over this executor's pods (once; it runs until `close`). */
  private watchPods(): void {
    if (this.informer) return;
    const { namespace } = this.cfg;
    const selector = `${POD_LABELS.node}=${this.nodeName}`;
    const informer = this.k8s.makeInformer(
      this.kc,
      `/api/v1/namespaces/${namespace}/pods?timeoutSeconds=${WATCH_TIMEOUT_SECONDS}`,
      () => this.core.listNamespacedPod({ namespace, labelSelector: selector }),
      selector,
    );
    informer.on('add', (pod) => void this.observe(pod));
    informer.on('update', (pod) => void this.observe(pod));
    informer.on('delete', (pod) => {
      this.leftovers.delete(pod.metadata?.name ?? '');
      this.vanished(pod.metadata?.name ?? '');
    });
    // The informer stops at an error (not at a watch's normal end, which it resumes): start it again after a pause.
    informer.on('error', (err) => {
      this.log.warn({ err: errorText(err as Error) }, 'watching task pods failed; watching again');
      if (this.informer !== informer) return;
      clearTimeout(this.rewatch);
      this.rewatch = setTimeout(() => {
        if (this.informer === informer) void informer.start();
      }, this.cfg.rewatchMs);
      this.rewatch.unref();
    });
    this.informer = informer;
    void informer.start();
  }

  /** Settles the attempt of a pod that ended (or can never start): logs copied, pod deleted. */
  private async observe(pod: k8s.V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? '';
    const w = this.watched.get(name);
    if (!w) {
      // Ours by its node label but no attempt of this process: a previous executor of this node left it (its
      // attempt was ended NodeLost when this one started), so it must not run on.
      if (pod.metadata?.deletionTimestamp === undefined && !this.leftovers.has(name) && !this.settled.has(name)) {
        this.leftovers.add(name);
        this.log.warn({ pod: name }, 'deleting a task pod a previous executor of this node left');
        this.core
          .deleteNamespacedPod({ name, namespace: this.cfg.namespace, gracePeriodSeconds: 0 })
          .catch((err: Error) => this.log.warn({ pod: name, err: errorText(err) }, 'deleting a left-over task pod failed'));
      }
      return;
    }
    if (!w.following && pod.status?.phase === 'Running') w.following = this.follow(w);
    const exit = podExit(pod);
    if (!exit || w.collecting) return;
    w.ended = true;
    w.collecting = true;
    await this.collectLogs(w);
    this.core.deleteNamespacedPod({ name: w.name, namespace: this.cfg.namespace }).catch(() => undefined);
    w.resolve(exit);
  }

  /** A watched pod was deleted: by a stop (it ends as a signal) or by someone else (the cluster's doing: a node error). */
  private vanished(name: string): void {
    const w = this.watched.get(name);
    if (!w || w.collecting) return;
    w.following?.stop();
    w.resolve(
      w.stopping ? { signal: 'SIGTERM' } : { exitCode: 126, nodeError: `pod ${name} was deleted by someone else (evicted, or its Kubernetes node was lost)` },
    );
  }

  /**
   * Copies the pod's log into the attempt's stdout file as it is written (`batch logs -f`
   * follows that file); the copy is complete when the stream ends after the container's end
   * was seen (otherwise the attempt's end reads the whole log). A stream
   * the server closes early (its idle timeout, an API server restart) while the container runs
   * is followed again: the bytes already copied are skipped (the log only grows) and the rest
   * appended, so a reader at any offset reads on.
   */
  private follow(w: Watched): { done: Promise<boolean>; stop: () => void } {
    let stopped = false;
    let abort: AbortController | undefined;
    let out: WriteStream | undefined;
    let skipper: Transform | undefined;
    /** Bytes of the log already in the file: a follow again skips them and appends the rest. */
    let copied = 0;
    /** One follow: whether the stream ended by itself, and whether the pod's end had been seen by then. */
    const once = () =>
      new Promise<{ ended: boolean; afterEnd: boolean }>((resolve) => {
        const file = createWriteStream(w.paths.stdout, { flags: copied > 0 ? 'a' : 'w' });
        let skip = copied;
        const skip1 = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            if (skip >= chunk.length) {
              skip -= chunk.length;
              cb();
              return;
            }
            const rest = chunk.subarray(skip);
            skip = 0;
            copied += rest.length;
            cb(null, rest);
          },
        });
        skip1.pipe(file);
        out = file;
        skipper = skip1;
        let finished = false;
        let afterEnd = false;
        file.on('finish', () => {
          finished = true;
          afterEnd = !!w.ended;
        });
        file.on('close', () => resolve({ ended: finished && !stopped, afterEnd }));
        file.on('error', () => resolve({ ended: false, afterEnd: false }));
        new this.k8s.Log(this.kc).log(this.cfg.namespace, w.name, 'task', skip1, { follow: true }).then(
          (ctl) => {
            abort = ctl;
            if (stopped) ctl.abort();
          },
          (err: Error) => {
            this.log.debug({ pod: w.name, err: errorText(err) }, "following a task pod's log failed; it is read when the pod ends");
            skip1.destroy();
            file.destroy();
          },
        );
      });
    const done = (async () => {
      try {
        mkdirSync(w.paths.logDir, { recursive: true });
      } catch {
        return false;
      }
      for (let i = 0; i < FOLLOW_RETRIES && !stopped; i++) {
        const { ended, afterEnd } = await once();
        if (!ended) return false;
        // Complete only if the pod's end was seen before the stream ended; a stream that ended
        // first may have been cut just before the container's end: the whole log is read then.
        if (afterEnd) return true;
        if (await this.containerEnded(w.name)) return false;
      }
      return false;
    })();
    // Stopping closes the file too: a source that errors or is aborted does not end the file it was piped into.
    return {
      done,
      stop: () => {
        stopped = true;
        abort?.abort();
        skipper?.destroy();
        out?.destroy();
      },
    };
  }

  /** Whether a pod's container no longer runs (ended, or the pod is gone). */
  private async containerEnded(name: string): Promise<boolean> {
    try {
      return podExit(await this.core.readNamespacedPod({ name, namespace: this.cfg.namespace })) !== undefined;
    } catch (err) {
      return (err as { code?: number }).code === 404;
    }
  }

  /** Completes the attempt's stdout file: the followed copy once it ends, else (no copy, or not ending in time) the whole log read now. */
  private async collectLogs(w: Watched): Promise<void> {
    const copied = w.following && (await Promise.race([w.following.done, new Promise<false>((r) => setTimeout(() => r(false), 2000).unref())]));
    if (copied) return;
    w.following?.stop();
    try {
      const text = await this.core.readNamespacedPodLog({ name: w.name, namespace: this.cfg.namespace });
      mkdirSync(w.paths.logDir, { recursive: true });
      writeFileSync(w.paths.stdout, text);
    } catch (err) {
      this.log.warn({ pod: w.name, err: errorText(err as Error) }, "reading a task pod's log failed");
    }
  }
}

/** The attempt's exit when its pod has ended (or can never start); undefined while it runs. Pure. */
export function podExit(pod: k8s.V1Pod): AttemptExit | undefined {
  const phase = pod.status?.phase;
  const state = pod.status?.containerStatuses?.[0]?.state;
  if (phase === 'Succeeded') return { exitCode: 0 };
  if (phase === 'Failed') {
    const reason = pod.status?.reason;
    if (reason === 'DeadlineExceeded') return { deadlineExceeded: true, signal: 'SIGKILL' };
    const t = state?.terminated;
    const nodeError = `pod failed: ${reason}${pod.status?.message ? `: ${pod.status.message}` : ''}`;
    // The kubelet refused it for room (OutOfcpu, OutOfmemory, OutOfnvidia.com/gpu…): requeued, the node is not broken.
    if (reason && NODE_FULL_REASONS.has(reason)) return { exitCode: 126, nodeError, nodeFull: true };
    // Evicted for node pressure, the node shut down or was lost: the node's doing even when the container was killed (137, 143).
    if (reason && NODE_REASONS.has(reason)) return { exitCode: 126, nodeError };
    if (t?.reason === 'OOMKilled') return { exitCode: t.exitCode ?? 137, oomKilled: true };
    // Failed before its container ran, for a reason of the pod's: not the task's doing.
    if (!t && reason) return { exitCode: 126, nodeError };
    return { exitCode: t?.exitCode ?? 1 };
  }
  const waiting = state?.waiting?.reason;
  if (waiting && FATAL_WAITING.has(waiting)) return { exitCode: 125 };
  return undefined;
}

/**
 * What a pod requests, as the kubelet counts it: per resource the larger of its containers'
 * sum (with sidecars, init containers with `restartPolicy: Always`) and its largest init
 * container, plus the pod's overhead. Pure; throws on a quantity it cannot read.
 */
export function podRequests(pod: k8s.V1Pod): ResourceVector {
  const of = (res: Record<string, string> | undefined): ResourceVector => ({
    cpu: res?.cpu ? parseCpu(res.cpu, 'pod cpu') : 0,
    memory: res?.memory ? parseMemory(res.memory, 'pod memory') : 0,
    gpu: Number(res?.['nvidia.com/gpu'] ?? 0) * GPU_MILLI,
  });
  const total: ResourceVector = { cpu: 0, memory: 0, gpu: 0 };
  const sidecars = (pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
  for (const c of [...(pod.spec?.containers ?? []), ...sidecars]) {
    const r = of(c.resources?.requests);
    total.cpu += r.cpu;
    total.memory += r.memory;
    total.gpu! += r.gpu!;
  }
  for (const c of pod.spec?.initContainers ?? []) {
    if (c.restartPolicy === 'Always') continue;
    const r = of(c.resources?.requests);
    total.cpu = Math.max(total.cpu, r.cpu);
    total.memory = Math.max(total.memory, r.memory);
    total.gpu = Math.max(total.gpu!, r.gpu!);
  }
  const overhead = of(pod.spec?.overhead);
  return { cpu: total.cpu + overhead.cpu, memory: total.memory + overhead.memory, gpu: total.gpu! + overhead.gpu! };
}

/** A pod name for an attempt: DNS-1123, at most 63 characters. */
export function podName(jobId: string, index: number, attempt: number): string {
  const tail = `-${index}-a${attempt}`;
  const head = `batch-${jobId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63 - tail.length).replace(/-+$/, '');
  return `${head}${tail}`;
}

function errorText(err: Error & { code?: number; body?: unknown }): string {
  return err.code ? `HTTP ${err.code}: ${typeof err.body === 'string' ? err.body.slice(0, 200) : err.message}` : err.message;
}
