/**
 * A small fake Kubernetes API server on loopback with the endpoints the Kubernetes backend
 * uses: list nodes; create, list and watch (label selector, resource versions), delete pods;
 * read a pod's log. A created
 * pod moves Pending → Running → its end, decided by its command (the test's script):
 *   `exit N` → Failed with exit code N (0: Succeeded); `oom` → Failed, OOMKilled, 137;
 *   `sleep` → Running until deleted or its activeDeadlineSeconds passes (DeadlineExceeded);
 *   `bad-image` as the image → waiting in ImagePullBackOff; a pod bound to a node (`nodeName`)
 *   without CPU left there → Failed, OutOfcpu, before it runs (the kubelet's admission).
 * Pods that are not BatchAPI's (`addForeignPod`) run in `kube-system` and are listed across
 * namespaces by node (`fieldSelector=spec.nodeName=`). A pod's log is one line, and one more
 * (`end of NAME`) once its container ended.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakePod {
  metadata: { name: string; namespace: string; labels: Record<string, string>; creationTimestamp?: string; resourceVersion?: string };
  spec: {
    containers: Array<{
      name: string;
      image: string;
      command: string[];
      env?: Array<{ name: string; value: string }>;
      resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
    }>;
    activeDeadlineSeconds?: number;
    nodeSelector?: Record<string, string>;
    nodeName?: string;
    restartPolicy?: string;
  };
  status: { phase: string; reason?: string; message?: string; containerStatuses?: unknown[] };
}

export class FakeKube {
  readonly pods = new Map<string, FakePod>();
  /** Every pod ever created, as created (spec checks). */
  readonly created: FakePod[] = [];
  readonly deleted: string[] = [];
  /** Log reads with `follow=true` served. */
  followRequests = 0;
  /** Watch requests served, in order (their query strings). */
  readonly watches: string[] = [];
  private server!: Server;
  private version = 0;
  /** Every change, for watches that resume from a resource version. */
  private readonly history: Array<{ version: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; pod: FakePod }> = [];
  /** Open `follow=true` log reads by pod key, ended when the pod ends. */
  private readonly followers = new Map<string, ServerResponse[]>();
  private readonly watchers = new Set<{ ns: string; selector: Record<string, string>; res: ServerResponse }>();
  url = '';

  constructor(private readonly nodes: Array<{ name: string; allocatable: Record<string, string>; labels?: Record<string, string> }>) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const parts = url.pathname.split('/').filter(Boolean); // api v1 namespaces ns pods [name [log]]
    if (req.method === 'GET' && url.pathname === '/api/v1/nodes') {
      return send(200, { kind: 'NodeList', apiVersion: 'v1', metadata: {}, items: this.nodes.map(nodeObject) });
    }
    const nodeRead = /^\/api\/v1\/nodes\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && nodeRead) {
      const n = this.nodes.find((x) => x.name === nodeRead[1]);
      return n ? send(200, nodeObject(n)) : send(404, { kind: 'Status', code: 404, reason: 'NotFound', message: `node ${nodeRead[1]} not found` });
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/pods') {
      const node = /^spec\.nodeName=(.+)$/.exec(url.searchParams.get('fieldSelector') ?? '')?.[1];
      const items = [...this.pods.values()].filter((p) => !node || p.spec.nodeName === node);
      return send(200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.version) }, items });
    }
    if (parts[0] !== 'api' || parts[2] !== 'namespaces' || parts[4] !== 'pods') return send(404, { kind: 'Status', code: 404, message: 'not found' });
    const ns = parts[3];
    const name = parts[5];
    if (req.method === 'POST' && !name) {
      const body = JSON.parse(await readBody(req)) as FakePod;
      const key = `${ns}/${body.metadata.name}`;
      if (this.pods.has(key)) return send(409, { kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'exists' });
      const pod: FakePod = {
        ...body,
        metadata: { ...body.metadata, namespace: ns, creationTimestamp: new Date().toISOString() },
        status: { phase: 'Pending' },
      };
      this.pods.set(key, pod);
      this.changed('ADDED', pod);
      this.created.push(JSON.parse(JSON.stringify(pod)));
      this.run(key, pod);
      return send(201, pod);
    }
    if (req.method === 'GET' && !name) {
      const selector = Object.fromEntries(
        (url.searchParams.get('labelSelector') ?? '')
          .split(',')
          .filter(Boolean)
          .map((kv) => kv.split('=')),
      );
      if (url.searchParams.get('watch') === 'true') return this.watch(ns, selector, Number(url.searchParams.get('resourceVersion') ?? 0), url.search, res);
      const items = [...this.pods.values()].filter((p) => p.metadata.namespace === ns && matches(selector, p));
      return send(200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.version) }, items });
    }
    const key = `${ns}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) return send(404, { kind: 'Status', code: 404, reason: 'NotFound', message: `pod ${name} not found` });
    if (req.method === 'GET' && !parts[6]) return send(200, pod);
    if (req.method === 'GET' && parts[6] === 'log') {
      const ended = ['Succeeded', 'Failed'].includes(pod.status.phase);
      const text = `log of ${name}: ${pod.spec.containers[0].command.join(' ')}\n${ended ? `end of ${name}\n` : ''}`;
      if (url.searchParams.get('follow') !== 'true' || ended) return send(200, text);
      // Following: what was written so far, then the stream stays open until the container ends.
      this.followRequests++;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(text);
      this.followers.set(key, [...(this.followers.get(key) ?? []), res]);
      return;
    }
    if (req.method === 'DELETE') {
      this.pods.delete(key);
      this.changed('DELETED', pod);
      this.deleted.push(name);
      return send(200, pod);
    }
    return send(405, { kind: 'Status', code: 405, message: 'method not allowed' });
  }

  /** Ends every open watch from the server's side (as an API server does after its watch timeout). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.end();
  }

  /** Ends every open log follow from the server's side while its container runs (an idle timeout, an API server restart). */
  dropFollowers(): void {
    for (const list of this.followers.values()) for (const r of list) r.end();
    this.followers.clear();
  }

  /** A running pod that is not BatchAPI's (a DaemonSet's, say) on a node, requesting `cpu` millicores. */
  addForeignPod(node: string, name: string, cpu: number): void {
    const pod: FakePod = {
      metadata: { name, namespace: 'kube-system', labels: {} },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'x', command: ['sleep'], resources: { requests: { cpu: `${cpu}m` } } }] },
      status: { phase: 'Running' },
    };
    this.pods.set(`kube-system/${name}`, pod);
    this.changed('ADDED', pod);
  }

  /** Ends a running pod's container with exit code 0, as if its command finished. */
  complete(name: string): void {
    for (const pod of this.pods.values()) {
      if (pod.metadata.name === name)
        this.setStatus(pod, { phase: 'Succeeded', containerStatuses: [{ name: 'task', state: { terminated: { exitCode: 0, reason: 'Completed' } } }] });
    }
  }

  /** Evicts a running pod for node pressure as a kubelet does: the pod stays, Failed/Evicted, its container killed (137). */
  evictForPressure(name: string): void {
    for (const pod of this.pods.values()) {
      if (pod.metadata.name === name)
        this.setStatus(pod, {
          phase: 'Failed',
          reason: 'Evicted',
          message: 'The node was low on resource: memory.',
          containerStatuses: [{ name: 'task', state: { terminated: { exitCode: 137, reason: 'Error' } } }],
        });
    }
  }

  /** Deletes a pod as the cluster would (an eviction), not through the API. */
  evict(name: string): void {
    for (const [key, pod] of this.pods) {
      if (pod.metadata.name !== name) continue;
      this.pods.delete(key);
      this.changed('DELETED', pod);
    }
  }

  /** Whether a pod bound to a node fits beside the node's other live pods (CPU only). */
  private admits(pod: FakePod): boolean {
    const node = this.nodes.find((n) => n.name === pod.spec.nodeName);
    if (!node) return false;
    const live = [...this.pods.values()].filter((p) => p !== pod && p.spec.nodeName === node.name && !['Succeeded', 'Failed'].includes(p.status.phase));
    const used = live.reduce((sum, p) => sum + millicores(p.spec.containers[0].resources?.requests?.cpu), 0);
    return used + millicores(pod.spec.containers[0].resources?.requests?.cpu) <= millicores(node.allocatable.cpu);
  }

  /** Records a change of a pod under a new resource version and tells the watches that select it. */
  private changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: FakePod): void {
    pod.metadata.resourceVersion = String(++this.version);
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    if (type === 'DELETED' || ['Succeeded', 'Failed'].includes(pod.status.phase)) {
      for (const r of this.followers.get(key) ?? []) r.end(type === 'DELETED' ? undefined : `end of ${pod.metadata.name}\n`);
      this.followers.delete(key);
    }
    const snapshot = JSON.parse(JSON.stringify(pod)) as FakePod;
    this.history.push({ version: this.version, type, pod: snapshot });
    for (const w of this.watchers)
      if (w.ns === pod.metadata.namespace && matches(w.selector, pod)) w.res.write(`${JSON.stringify({ type, object: snapshot })}\n`);
  }

  /** A watch: the changes after `from`, then each change as it happens, one JSON object a line. */
  private watch(ns: string, selector: Record<string, string>, from: number, query: string, res: ServerResponse): void {
    this.watches.push(query);
    res.writeHead(200, { 'content-type': 'application/json' });
    for (const h of this.history)
      if (h.version > from && h.pod.metadata.namespace === ns && matches(selector, h.pod)) res.write(`${JSON.stringify({ type: h.type, object: h.pod })}\n`);
    const w = { ns, selector, res };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }

  /** Sets a pod's status as its kubelet would. */
  private setStatus(pod: FakePod, status: FakePod['status']): void {
    pod.status = status;
    this.changed('MODIFIED', pod);
  }

  /** Moves a pod through its life per its command. */
  private run(key: string, pod: FakePod): void {
    const c = pod.spec.containers[0];
    const script = c.command.join(' ');
    const alive = () => this.pods.get(key) === pod;
    if (pod.spec.nodeName && !this.admits(pod)) {
      // The kubelet's admission: a pod bound to a node without room fails before it runs.
      setTimeout(() => {
        if (alive()) this.setStatus(pod, { phase: 'Failed', reason: 'OutOfcpu', message: `Node didn't have enough resource: cpu` });
      }, 20);
      return;
    }
    if (c.image === 'bad-image') {
      setTimeout(() => {
        if (alive()) this.setStatus(pod, { phase: 'Pending', containerStatuses: [{ name: 'task', state: { waiting: { reason: 'ImagePullBackOff' } } }] });
      }, 50);
      return;
    }
    setTimeout(() => {
      if (!alive()) return;
      this.setStatus(pod, { phase: 'Running', containerStatuses: [{ name: 'task', state: { running: {} } }] });
      if (/\bsleep\b/.test(script)) {
        if (pod.spec.activeDeadlineSeconds)
          setTimeout(() => {
            if (alive()) this.setStatus(pod, { phase: 'Failed', reason: 'DeadlineExceeded' });
          }, pod.spec.activeDeadlineSeconds * 1000);
        return;
      }
      setTimeout(() => {
        if (!alive()) return;
        const oom = /\boom\b/.test(script);
        const code = oom ? 137 : Number(/exit (\d+)/.exec(script)?.[1] ?? 0);
        this.setStatus(pod, {
          phase: code === 0 ? 'Succeeded' : 'Failed',
          containerStatuses: [{ name: 'task', state: { terminated: { exitCode: code, reason: oom ? 'OOMKilled' : code === 0 ? 'Completed' : 'Error' } } }],
        });
      }, 100);
    }, 50);
  }
}

/** A CPU quantity ("1500m", "2") in millicores. */
function millicores(q: string | undefined): number {
  if (!q) return 0;
  return q.endsWith('m') ? Number(q.slice(0, -1)) : Number(q) * 1000;
}

function nodeObject(n: { name: string; allocatable: Record<string, string>; labels?: Record<string, string> }) {
  return { metadata: { name: n.name, labels: n.labels ?? {} }, spec: {}, status: { allocatable: n.allocatable } };
}

function matches(selector: Record<string, string>, pod: FakePod): boolean {
  return Object.entries(selector).every(([k, v]) => pod.metadata.labels[k] === v);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      data += c;
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}
