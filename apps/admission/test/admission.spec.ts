/**
 * The jobs API over real HTTP against a real etcd: each error a user can cause has its own
 * status and code and changes nothing; tenants see only their own jobs; a 201 is durable.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTAINER_RUNTIME_LABEL, type JobRecord, type JobView, type NodeRecord } from '@batchapi/api';
import { FakeClock, newServiceToken, type RunningService } from '@batchapi/runtime';
import { EtcdStore, type LocalEtcd, startEtcd } from '@batchapi/store';
import { freePort } from '@batchapi/proc';
import { startQuota } from '@batchapi/quota';
import { RUNTIME_RECHECK_MS, startAdmission, TokenAuthenticator } from '../src';
import { teamTokens } from './tokens';

const TOKENS = teamTokens('ghost');
const CLUSTER = {
  tenants: [{ name: 'team-a' }, { name: 'team-b' }, { name: 'ops' }],
  queues: [
    { name: 'default', tenant: 'team-a' },
    { name: 'b-queue', tenant: 'team-b' },
    { name: 'small', tenant: 'team-a', nominal: { cpu: '2' } },
  ],
};

let etcd: LocalEtcd;
let store: EtcdStore;
let quota: RunningService;
let admission: RunningService;
let api: string;

async function call(method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json, headers: res.headers };
}
const jobCount = async () => (await store.listAll<JobRecord>(store.keys.jobs())).items.length;

beforeAll(async () => {
  etcd = await startEtcd();
  const config = { etcdEndpoints: etcd.endpoints, port: 0, leaseTtlSeconds: 5, logLevel: 'error' };
  store = new EtcdStore({ endpoints: etcd.endpoints });
  quota = await startQuota({ cluster: CLUSTER, config });
  admission = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, bodyLimit: 64 * 1024 });
  api = admission.url;
});
afterAll(async () => {
  await admission?.close();
  await quota?.close();
  await store?.close();
  await etcd?.stop();
});

const submit = { command: ['echo', 'hi'], tasks: 3, resources: { cpu: '500m', memory: '64Mi' } };

describe('POST /v1/jobs', () => {
  it('commits the job before answering 201, and the quota service queues it', async () => {
    const res = await call('POST', '/v1/jobs', 'token-a', submit);
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v1/jobs/${res.body.id}`);
    const stored = await store.get<JobRecord>(store.keys.job(res.body.id));
    expect(stored?.value.spec).toMatchObject({ command: ['echo', 'hi'], tasks: 3, resources: { cpu: 500, memory: 64 * 1024 * 1024 } });
    const deadline = Date.now() + 5000;
    let phase = '';
    while (Date.now() < deadline && phase !== 'Queued') {
      phase = (await call('GET', `/v1/jobs/${res.body.id}`, 'token-a')).body.phase;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(phase).toBe('Queued');
  });

  it('returns the same job with 200 for a retried Idempotency-Key, also under 20 concurrent retries', async () => {
    const before = await jobCount();
    const results = await Promise.all(Array.from({ length: 20 }, () => call('POST', '/v1/jobs', 'token-a', submit, { 'idempotency-key': 'retry-1' })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(19);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(await jobCount()).toBe(before + 1);
  });

  it.each([
    ['schema error names the field', 'token-a', { ...submit, tasks: 0 }, {}, 400, 'invalid_argument', 'tasks'],
    ['unknown field is named', 'token-a', { ...submit, colour: 'red' }, {}, 400, 'invalid_argument', 'colour'],
    ['bad quantity is named', 'token-a', { ...submit, resources: { cpu: 'lots' } }, {}, 400, 'invalid_argument', 'resources.cpu'],
    ['nested field path', 'token-a', { ...submit, command: ['echo', 7] }, {}, 400, 'invalid_argument', 'command.1'],
    ['not JSON', 'token-a', '{"command": [', {}, 400, 'invalid_argument', '(body)'],
    ['oversize body', 'token-a', { ...submit, env: { BIG: 'x'.repeat(70 * 1024) } }, {}, 413, 'payload_too_large', '(body)'],
    ['missing token', undefined, submit, {}, 401, 'unauthenticated', 'Authorization'],
    ['bad token', 'nope', submit, {}, 401, 'unauthenticated', 'Authorization'],
    ['another tenant named by a tenant token', 'token-a', { ...submit, tenant: 'team-b' }, {}, 403, 'permission_denied', 'tenant'],
    ['unknown tenant', 'token-ghost', submit, {}, 422, 'unknown_tenant', 'tenant'],
    ['unknown queue', 'token-a', { ...submit, queue: 'nope' }, {}, 422, 'unknown_queue', 'queue'],
    ['queue of another tenant', 'token-a', { ...submit, queue: 'b-queue' }, {}, 422, 'unknown_queue', 'queue'],
  ])('%s: its own status and code, nothing written', async (_name, token, body, headers, status, code, field) => {
    const before = await jobCount();
    const res = await call('POST', '/v1/jobs', token, body, headers);
    expect(res.status).toBe(status);
    expect(res.body.error).toMatchObject({ code, field });
    expect(typeof res.body.error.message).toBe('string');
    expect(await jobCount()).toBe(before);
  });

  it('answers 409 idempotency_conflict when a key is reused with another body, and writes nothing', async () => {
    await call('POST', '/v1/jobs', 'token-a', submit, { 'idempotency-key': 'reuse' });
    const before = await jobCount();
    const res = await call('POST', '/v1/jobs', 'token-a', { ...submit, tasks: 9 }, { 'idempotency-key': 'reuse' });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'idempotency_conflict', field: 'Idempotency-Key' });
    expect(await jobCount()).toBe(before);
  });

  it('rejects a job whose task cannot fit its queue quota, with the reason', async () => {
    const res = await call('POST', '/v1/jobs', 'token-a', { ...submit, queue: 'small', resources: { cpu: '3' } });
    expect(res.status).toBe(201);
    const deadline = Date.now() + 5000;
    let view: JobView = res.body;
    while (Date.now() < deadline && view.phase === 'Submitted') {
      view = (await call('GET', `/v1/jobs/${res.body.id}`, 'token-a')).body;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(view.phase).toBe('Rejected');
    expect(view.reason?.code).toBe('exceeds_quota');
  });
});

describe('a job that names a container image', () => {
  it('is refused 422 naming image while no node runs images, changing nothing; taken once one does; a retry of one taken answers it', async () => {
    const clock = new FakeClock(Date.now());
    const config = { etcdEndpoints: etcd.endpoints, port: 0, leaseTtlSeconds: 5, logLevel: 'error' };
    const adm = await startAdmission({ tokens: new TokenAuthenticator(TOKENS), config, clock });
    const post = async (key?: string) => {
      const res = await fetch(`${adm.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: 'Bearer token-a', 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify({ ...submit, image: 'python:3.12' }),
      });
      return { status: res.status, body: (await res.json()) as { id?: string; error?: { code: string; field?: string } } };
    };
    const k8s: NodeRecord = {
      name: 'k8s-1',
      capacity: { cpu: 8000, memory: 2 ** 33 },
      labels: { 'batchapi.io/backend': 'kubernetes', [CONTAINER_RUNTIME_LABEL]: 'kubernetes' },
      taints: [],
      gpus: [],
      url: 'http://127.0.0.1:1',
      registeredAt: Date.now(),
    };
    try {
      // No node at all runs images (this suite registers none): refused, and nothing written.
      const before = await jobCount();
      const refused = await post();
      expect(refused.status).toBe(422);
      expect(refused.body.error).toMatchObject({ code: 'no_container_runtime', field: 'image' });
      expect(await jobCount()).toBe(before);
      // A Kubernetes executor's node registers; admission looks again within RUNTIME_RECHECK_MS.
      await store.txn([], [{ put: store.keys.node('k8s-1'), value: k8s }]);
      clock.advance(RUNTIME_RECHECK_MS);
      const taken = await post('image-1');
      expect(taken.status).toBe(201);
      expect((await store.get<JobRecord>(store.keys.job(taken.body.id!)))?.value.spec.image).toBe('python:3.12');
      // The node goes: a new job in an image is refused again, but a retry of the one taken answers it.
      await store.txn([], [{ delete: store.keys.node('k8s-1') }]);
      clock.advance(RUNTIME_RECHECK_MS);
      expect((await post('image-2')).body.error).toMatchObject({ code: 'no_container_runtime', field: 'image' });
      const retried = await post('image-1');
      expect([retried.status, retried.body.id]).toEqual([200, taken.body.id]);
    } finally {
      await store.txn([], [{ delete: store.keys.node('k8s-1') }]);
      await adm.close();
    }
  });
});

describe('POST /v1/jobs/:id/resubmit', () => {
  const rich = {
    name: 'again',
    command: ['echo', 'hi'],
    tasks: 2,
    env: { API_TOKEN: 'the-real-secret', LR: '0.1' },
    labels: { team: 'ml', 'batch.workflow': 'wf-x', 'batch.step': 'a' },
    retry: { maxAttempts: 2 },
    resources: { cpu: '250m', memory: '32Mi' },
  };

  it('makes a new job with the stored spec (secrets as stored, not as shown), the same queue, labelled with the first', async () => {
    const first = await call('POST', '/v1/jobs', 'token-a', rich);
    expect(first.body.env.API_TOKEN).toBe('***'); // the view masks it; the resubmit must not copy the mask
    const again = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-a');
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(first.body.id);
    expect(again.headers.get('location')).toBe(`/v1/jobs/${again.body.id}`);
    const [a, b] = await store.getMany<JobRecord>([store.keys.job(first.body.id), store.keys.job(again.body.id)]);
    expect(b!.value.spec).toEqual({ ...a!.value.spec, labels: { team: 'ml', 'batch.resubmitted-from': first.body.id } });
    expect([b!.value.tenant, b!.value.queue]).toEqual([a!.value.tenant, a!.value.queue]);
    // an operator may resubmit any tenant's job: it stays that tenant's
    const byOperator = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-op', {});
    expect(byOperator.status).toBe(201);
    expect(byOperator.body.tenant).toBe('team-a');
  });

  it("answers 404 for another tenant's job or an unknown id, 400 naming a field for a body, and writes nothing", async () => {
    const first = await call('POST', '/v1/jobs', 'token-a', submit);
    const before = await jobCount();
    expect((await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-b')).body.error).toMatchObject({ code: 'not_found', id: first.body.id });
    expect((await call('POST', '/v1/jobs/no-such-job/resubmit', 'token-a')).body.error.code).toBe('not_found');
    const bad = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-a', { priority: 5000 });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_argument', field: 'priority' });
    const unknown = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-a', { command: ['rm', '-rf', '/'] });
    expect(unknown.body.error).toMatchObject({ code: 'invalid_argument', field: 'command' });
    expect(await jobCount()).toBe(before);
  });

  it('makes the new job with the changes asked for: priority, resources and environment over the stored spec', async () => {
    const first = await call('POST', '/v1/jobs', 'token-a', rich);
    const again = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-a', { priority: 9, resources: { memory: '64Mi' }, env: { LR: '0.01' } });
    expect(again.status).toBe(201);
    const [a, b] = await store.getMany<JobRecord>([store.keys.job(first.body.id), store.keys.job(again.body.id)]);
    // memory 32Mi → 64Mi (67,108,864 bytes); cpu 250m kept; the secret kept as stored
    expect(b!.value.spec).toEqual({
      ...a!.value.spec,
      priority: 9,
      resources: { ...a!.value.spec.resources, memory: 64 * 1024 ** 2 },
      env: { API_TOKEN: 'the-real-secret', LR: '0.01' },
      labels: { team: 'ml', 'batch.resubmitted-from': first.body.id },
    });
  });

  it('answers a retry with the same Idempotency-Key with the first resubmit’s job (200)', async () => {
    const first = await call('POST', '/v1/jobs', 'token-a', submit);
    const key = { 'idempotency-key': `resubmit-${first.body.id}` };
    const once = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-a', undefined, key);
    const twice = await call('POST', `/v1/jobs/${first.body.id}/resubmit`, 'token-a', undefined, key);
    expect([once.status, twice.status]).toEqual([201, 200]);
    expect(twice.body.id).toBe(once.body.id);
  });
});

describe('tenant isolation', () => {
  it("answers 404 (not 403) for another tenant's job, lists only one's own, lets operators see all", async () => {
    const mine = (await call('POST', '/v1/jobs', 'token-a', submit)).body as JobView;
    const other = await call('GET', `/v1/jobs/${mine.id}`, 'token-b');
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('not_found');
    expect((await call('DELETE', `/v1/jobs/${mine.id}`, 'token-b')).status).toBe(404);
    expect((await call('GET', `/v1/jobs/${mine.id}/tasks/0/logs`, 'token-b')).status).toBe(404);
    expect((await call('GET', '/v1/jobs/does-not-exist', 'token-a')).status).toBe(404);
    const listB = await call('GET', '/v1/jobs', 'token-b');
    expect(listB.body.jobs.every((j: JobView) => j.tenant === 'team-b')).toBe(true);
    const listOp = await call('GET', '/v1/jobs?limit=1000', 'token-op');
    expect(listOp.body.jobs.some((j: JobView) => j.id === mine.id)).toBe(true);
    expect((await call('GET', `/v1/jobs/${mine.id}`, 'token-op')).status).toBe(200);
  });

  it('pages a listing with nextPageToken', async () => {
    const p1 = await call('GET', '/v1/jobs?limit=2', 'token-a');
    expect(p1.body.jobs).toHaveLength(2);
    const p2 = await call('GET', `/v1/jobs?limit=2&pageToken=${p1.body.nextPageToken}`, 'token-a');
    expect(p2.body.jobs[0].id > p1.body.jobs[1].id).toBe(true);
    expect((await call('GET', '/v1/jobs?limit=0', 'token-a')).body.error).toMatchObject({ code: 'invalid_argument', field: 'limit' });
  });
});

describe('accepted means durable', () => {
  it('a job answered 201 is in etcd even when admission is killed right after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adm-'));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify(TOKENS));
    const port = await freePort();
    const child = spawn(process.execPath, [join(__dirname, '../dist/main.js')], {
      env: {
        ...process.env,
        BATCH_ETCD_ENDPOINTS: etcd.endpoints.join(','),
        BATCH_PORT: String(port),
        BATCH_TOKENS_FILE: join(dir, 'tokens.json'),
        BATCH_SERVICE_TOKEN: newServiceToken(),
        BATCH_LOG_LEVEL: 'error',
      },
      stdio: 'ignore',
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline) {
        const ok = await fetch(`${url}/readyz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const res = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: 'Bearer token-a', 'content-type': 'application/json' },
        body: JSON.stringify(submit),
      });
      child.kill('SIGKILL');
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as JobView;
      expect((await store.get<JobRecord>(store.keys.job(id)))?.value.id).toBe(id);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('operability', () => {
  it('serves /healthz, /readyz and Prometheus metrics counting requests by route and code', async () => {
    expect((await call('GET', '/healthz')).body).toMatchObject({ status: 'ok', service: 'admission' });
    expect((await call('GET', '/readyz')).status).toBe(200);
    const metrics = (await call('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/batch_http_requests_total\{route="\/v1\/jobs",method="POST",code="201",service="admission"\} [1-9]/);
    expect(metrics).toMatch(/batch_http_requests_total\{route="\/v1\/jobs",method="POST",code="400",service="admission"\} [1-9]/);
    expect(metrics).toContain('batch_http_request_duration_seconds_bucket');
  });
});

describe('why pending', () => {
  it('is worked out by admission from etcd when no scheduler replica answers (one registered, unreachable)', async () => {
    const port = await freePort(); // nothing listens there
    const member = store.keys.member('scheduler', 'gone');
    await store.txn([], [{ put: member, value: { service: 'scheduler', id: 'gone', pid: 1, startedAt: 0, rpc: `127.0.0.1:${port}` } }]);
    try {
      const job = await call('POST', '/v1/jobs', 'token-a', { command: ['true'], resources: { cpu: '1' } });
      expect(job.status).toBe(201);
      let why: any;
      for (let i = 0; i < 50; i++) {
        why = (await call('GET', `/v1/jobs/${job.body.id}/why`, 'token-a')).body;
        if (why.phase === 'Queued') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      // No nodes at all: nothing can be placed, and admission says it worked this out itself.
      expect(why).toMatchObject({ jobId: job.body.id, phase: 'Queued', pendingTasks: 1, placeableNow: 0, explainedBy: 'admission' });
    } finally {
      await store.txn([], [{ delete: member }]);
    }
  });
});

describe("why pending, explained by admission with the scheduler leader's settings", () => {
  it('names the topology levels the leader stored, not the default ones', async () => {
    const port = await freePort(); // nothing listens there: no scheduler replica answers
    const member = store.keys.member('scheduler', 'gone-settings');
    const node: NodeRecord = {
      name: 'why-pod-1',
      capacity: { cpu: 1000, memory: 2 ** 30 },
      labels: { 'example.com/pod': 'p1' },
      taints: [],
      gpus: [],
      url: 'http://127.0.0.1:1',
      registeredAt: 0,
    };
    await store.txn(
      [],
      [
        { put: member, value: { service: 'scheduler', id: 'gone-settings', pid: 1, startedAt: 0, rpc: `127.0.0.1:${port}` } },
        { put: store.keys.node(node.name), value: node },
      ],
    );
    try {
      // one task of 2 cores in one pod: the only node (1 core) has no room
      const job = await call('POST', '/v1/jobs', 'token-a', { command: ['true'], resources: { cpu: '2' }, topology: { required: 'pod' } });
      expect(job.status).toBe(201);
      const why = async () => {
        let view: any;
        for (let i = 0; i < 50; i++) {
          view = (await call('GET', `/v1/jobs/${job.body.id}/why`, 'token-a')).body;
          if (view.phase === 'Queued') break;
          await new Promise((r) => setTimeout(r, 50));
        }
        return view as { explainedBy: string; messages: string[] };
      };
      // No settings stored: the default levels (block, rack, host), which have no "pod".
      const before = await why();
      expect(before.explainedBy).toBe('admission');
      expect(before.messages.join('\n')).toContain(`level "pod" is not one of the cluster's levels (block, rack, host)`);
      // The leader's settings name "pod" by its label: the same job is explained against it.
      await store.txn(
        [],
        [{ put: store.keys.schedulerSettings(), value: { at: Date.now(), topology: [{ name: 'pod', label: 'example.com/pod' }, { name: 'host' }] } }],
      );
      const after = await why();
      expect(after.explainedBy).toBe('admission');
      expect(after.messages.join('\n')).not.toContain('is not one of the cluster');
      expect(after.messages.join('\n')).toContain('example.com/pod');
    } finally {
      await store.txn([], [{ delete: member }, { delete: store.keys.node(node.name) }, { delete: store.keys.schedulerSettings() }]);
    }
  });
});

describe('etcd unavailable', () => {
  it('answers 503 with Retry-After and writes nothing', async () => {
    for (let i = 0; i < etcd.members.length; i++) etcd.kill(i, 'SIGSTOP');
    try {
      const res = await call('POST', '/v1/jobs', 'token-a', submit);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('unavailable');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      for (let i = 0; i < etcd.members.length; i++) etcd.kill(i, 'SIGCONT');
    }
  });
});
