/** The SDK against a real HTTP server on loopback (node:http; fetch is not mocked). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, BatchClient, backoff, decodeError, JobHandle, type JobView, retryAfterMs } from './index';

let server: Server;
let url: string;
let connections = 0;
let handler: (req: IncomingMessage, res: ServerResponse, body: string) => void;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => handler(req, res, body));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise((r) => server.close(r));
});

const view = (over: Partial<JobView> = {}): JobView => ({
  id: 'j1', name: 'job', tenant: 'default', queue: 'default', phase: 'Queued', command: ['true'], env: {}, resources: { cpu: '1' }, tasks: 1, priority: 0, labels: {},
  taskCounts: { pending: 1, bound: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 }, createdAt: '2026-01-01T00:00:00.000Z', ...over,
});
const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
const client = (over: Partial<ConstructorParameters<typeof BatchClient>[0]> = {}) => new BatchClient({ url, token: 't', ...over });

describe('maxRunning', () => {
  it('sends a job\'s maxRunning in the submit body and reads it back from the view', async () => {
    let sent: unknown;
    handler = (_req, res, body) => { sent = JSON.parse(body); json(res, 201, view({ tasks: 1000, maxRunning: 50 })); };
    const job = await client().submitJob({ command: ['run'], tasks: 1000, maxRunning: 50 });
    expect(sent).toEqual({ command: ['run'], tasks: 1000, maxRunning: 50 });
    expect(job.maxRunning).toBe(50);
  });

  it('surfaces the gang refusal as an ApiError with its stable code and field', async () => {
    handler = (_req, res) => json(res, 422, { error: { code: 'max_running_below_gang', message: 'maxRunning: 2 is below the gang\'s 4 tasks', field: 'maxRunning' } });
    const err = await client().submitJob({ command: ['x'], tasks: 4, gang: true, maxRunning: 2 }).catch((e) => e);
    expect(err).toMatchObject({ code: 'max_running_below_gang', status: 422, details: { field: 'maxRunning' } });
  });
});

describe('workflow retry', () => {
  const wfView = { id: 'wf-2', name: 'n', tenant: 'default', queue: 'default', labels: {}, phase: 'Running', createdAt: 1, finishedAt: null, deadlineAt: null, retryOf: 'wf-1', steps: [] };
  it('posts {} to the run\'s retry route with an Idempotency-Key, the same key on a retried 503, and returns the new run\'s handle', async () => {
    const seen: Array<{ path?: string; key?: string | string[]; body: string }> = [];
    handler = (req, res, body) => {
      seen.push({ path: req.url, key: req.headers['idempotency-key'], body });
      if (seen.length === 1) json(res, 503, { error: { code: 'unavailable', message: 'etcd' } }, { 'retry-after': '0' });
      else json(res, 201, wfView);
    };
    const handle = await client().workflows.retry('wf-1');
    expect([handle.id, handle.submitted.retryOf]).toEqual(['wf-2', 'wf-1']);
    expect(seen.map((r) => [r.path, r.body])).toEqual([['/v1/workflows/wf-1/retry', '{}'], ['/v1/workflows/wf-1/retry', '{}']]);
    expect(seen[0].key).toBeTruthy();
    expect(seen[1].key).toBe(seen[0].key);
  });

  it('surfaces a run that cannot be retried as an ApiError workflow_not_retryable naming it', async () => {
    handler = (_req, res) => json(res, 409, { error: { code: 'workflow_not_retryable', message: 'workflow wf-1 succeeded', id: 'wf-1' } });
    const err = await client().workflows.retry('wf-1').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'workflow_not_retryable', status: 409, details: { id: 'wf-1' } });
  });
});

describe('python', () => {
  it("sends a job's python requirements and reads back their normal form and digest from the view", async () => {
    let sent: unknown;
    const python = { requirements: ['numpy==2.1.0', 'scikit-learn==1.5.2'], digest: `sha256:${'a'.repeat(64)}` };
    handler = (_req, res, body) => { sent = JSON.parse(body); json(res, 201, view({ python })); };
    const job = await client().submitJob({ command: ['python3', 'train.py'], python: { requirements: ['scikit-learn==1.5.2', 'numpy==2.1.0'] } });
    expect(sent).toEqual({ command: ['python3', 'train.py'], python: { requirements: ['scikit-learn==1.5.2', 'numpy==2.1.0'] } });
    expect(job.python).toEqual(python);
  });

  it('surfaces a refused requirement as an ApiError naming its line', async () => {
    handler = (_req, res) => json(res, 400, { error: { code: 'invalid_argument', message: 'python.requirements.0: must be one requirement specifier', field: 'python.requirements.0' } });
    const err = await client().submitJob({ command: ['x'], python: { requirements: ['-e .'] } }).catch((e) => e);
    expect(err).toMatchObject({ code: 'invalid_argument', status: 400, details: { field: 'python.requirements.0' } });
  });
});

describe('retries', () => {
  it('retries a 503 after Retry-After with the same Idempotency-Key, so a retried submit is one job', async () => {
    const keys: string[] = [];
    const times: number[] = [];
    handler = (req, res) => {
      keys.push(String(req.headers['idempotency-key']));
      times.push(Date.now());
      if (keys.length < 3) json(res, 503, { error: { code: 'unavailable', message: 'busy' } }, { 'retry-after': '0.2' });
      else json(res, 201, view());
    };
    expect(await client().submitJob({ command: ['true'] })).toEqual(view());
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    // Retry-After 0.2 s was honored between attempts (timer slack allowed)
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(180);
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(180);
  });

  it("sends the caller's idempotency key as given, and a new one for each submitJob call", async () => {
    const keys: string[] = [];
    handler = (req, res) => { keys.push(String(req.headers['idempotency-key'])); json(res, 201, view()); };
    await client().submitJob({ command: ['true'] }, { idempotencyKey: 'nightly-2026-01-01' });
    await client().submitJob({ command: ['true'] });
    await client().submitJob({ command: ['true'] });
    expect(keys[0]).toBe('nightly-2026-01-01');
    expect(keys[1]).not.toBe(keys[2]);
  });

  it('gives up after `retries` retries of a 429 with the last error, its code and retryAfterSeconds', async () => {
    let calls = 0;
    handler = (_req, res) => { calls++; json(res, 429, { error: { code: 'rate_limited', message: 'slow down', retryAfterSeconds: 1 } }, { 'retry-after': '0' }); };
    const err = await client({ retries: 2 }).getJob('j1').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'rate_limited', status: 429, message: 'slow down', details: { retryAfterSeconds: 1 } });
    // 1 try + 2 retries
    expect(calls).toBe(3);
  });

  it('never retries other errors: a 400 is decoded with its field, once', async () => {
    let calls = 0;
    handler = (_req, res) => { calls++; json(res, 400, { error: { code: 'invalid_argument', message: 'tasks: too small', field: 'tasks' } }); };
    const err = await client().submitJob({ command: ['true'], tasks: 0 }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'invalid_argument', status: 400, message: 'tasks: too small', details: { field: 'tasks' } });
    expect(calls).toBe(1);
  });

  it('answers unavailable, naming the URL, when nothing listens (after retrying)', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const err = await new BatchClient({ url: `http://127.0.0.1:${port}`, token: 't', retries: 1, maxRetryDelayMs: 10 }).listJobs().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(`GET http://127.0.0.1:${port}/v1/jobs: ECONNREFUSED`);
    expect(err.message).toContain('tried 2 times');
  });

  it('times out an attempt that gets no answer within timeoutMs', async () => {
    handler = () => undefined; // never answers
    const started = Date.now();
    const err = await client({ timeoutMs: 200, retries: 0 }).getJob('j1').catch((e) => e);
    expect(err).toMatchObject({ code: 'unavailable' });
    expect(err.message).toContain('no answer within 200 ms');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('requests', () => {
  it('sends the bearer token, method and query of each call, reusing connections', async () => {
    const seen: string[] = [];
    handler = (req, res, body) => {
      expect(req.headers.authorization).toBe('Bearer secret');
      seen.push(`${req.method} ${req.url} ${body}`);
      if (req.url?.startsWith('/v1/jobs?')) json(res, 200, { jobs: [view()], nextPageToken: 'p2' });
      else json(res, req.method === 'DELETE' ? 202 : 200, view({ id: 'a/b' }));
    };
    const c = new BatchClient({ url: `${url}/`, token: 'secret' });
    const before = connections;
    expect(await c.listJobs({ state: 'Running', queue: 'q1', limit: 10, pageToken: 'x y' })).toEqual({ jobs: [view()], nextPageToken: 'p2' });
    await c.getJob('a/b');
    await c.cancelJob('a/b');
    expect(seen).toEqual(['GET /v1/jobs?state=Running&queue=q1&limit=10&pageToken=x+y ', 'GET /v1/jobs/a%2Fb ', 'DELETE /v1/jobs/a%2Fb ']);
    for (let i = 0; i < 5; i++) await c.getJob('a/b');
    // keep-alive: 8 calls, one after the other, over at most 2 connections (undici may open a
    // second one while the first is being handed back to its pool)
    expect(connections - before).toBeLessThanOrEqual(2);
  });

  it('decodes an error body that is not the API envelope by its status', async () => {
    handler = (_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>');
    await expect(client().getJob('x')).rejects.toMatchObject({ code: 'not_found', status: 404, message: 'HTTP 404: <h1>Not Found</h1>' });
  });

  it.each([
    // status, body → code (and why)
    [404, '{"error":{"code":"not_found","message":"job x not found","id":"x"}}', 'not_found'], // the envelope wins
    [502, 'Bad Gateway', 'unavailable'], // no code has 502: a 5xx is unavailable
    [401, '', 'unauthenticated'],
    [418, '{}', 'internal'], // unknown 4xx without envelope
  ])('decodeError(%i, %s) has code %s', (status, body, code) => {
    expect(decodeError(status, body).code).toBe(code);
  });
});

describe('logs', () => {
  it('streams chunks as the server writes them, with stream, attempt and follow in the query', async () => {
    let finish: () => void = () => undefined;
    handler = (req, res) => {
      expect(req.url).toBe('/v1/jobs/j1/tasks/2/logs?stream=stderr&attempt=3&follow=true');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('line 1\n');
      finish = () => res.end('line 2\n');
    };
    const chunks: string[] = [];
    for await (const c of client().logs('j1', 2, { stream: 'stderr', attempt: 3, follow: true })) {
      chunks.push(c);
      // The server ends only once the first chunk arrived here: the client does not buffer the whole answer.
      if (chunks.length === 1) finish();
    }
    expect(chunks.join('')).toBe('line 1\nline 2\n');
  });

  it('keeps multi-byte characters whole across chunks', async () => {
    const bytes = Buffer.from('é€\n');
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(bytes.subarray(0, 1));
      setTimeout(() => res.end(bytes.subarray(1)), 20);
    };
    let text = '';
    for await (const c of client().logs('j1', 0)) text += c;
    expect(text).toBe('é€\n');
  });

  it('closes the connection when the consumer stops early', async () => {
    const closed = new Promise<void>((resolve) => {
      handler = (req, res) => {
        expect(req.url).toBe('/v1/jobs/j1/tasks/0/logs?stream=stdout&follow=true');
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
        res.on('close', resolve);
      };
    });
    for await (const c of client().logs('j1', 0, { follow: true })) {
      expect(c).toBe('first\n');
      break;
    }
    await closed;
  });

  it('throws the API error of a log that cannot be read', async () => {
    handler = (_req, res) => json(res, 404, { error: { code: 'not_found', message: 'job j9 has no task 5', id: 'j9' } });
    const read = async () => { for await (const _ of client().logs('j9', 5)) { /* nothing */ } };
    await expect(read()).rejects.toMatchObject({ code: 'not_found', details: { id: 'j9' } });
  });
});

describe('waitForJob', () => {
  it('polls until a terminal phase and reports each change once', async () => {
    const phases = ['Queued', 'Running', 'Running', 'Succeeded'] as const;
    let i = 0;
    handler = (_req, res) => json(res, 200, view({ phase: phases[Math.min(i++, 3)] }));
    const seen: string[] = [];
    const done = await client().waitForJob('j1', { intervalMs: 5, onUpdate: (j) => seen.push(j.phase) });
    expect(done.phase).toBe('Succeeded');
    expect(seen).toEqual(['Queued', 'Running', 'Succeeded']);
  });

  it('reports a change of task counts in the same phase', async () => {
    const running = [0, 1, 1, 2];
    let i = 0;
    handler = (_req, res) => {
      const r = running[Math.min(i++, 3)];
      json(res, 200, view({ phase: i > 4 ? 'Failed' : 'Running', taskCounts: { pending: 2 - r, bound: 0, running: r, succeeded: 0, failed: 0, cancelled: 0 } }));
    };
    const counts: number[] = [];
    await client().waitForJob('j1', { intervalMs: 5, onUpdate: (j) => counts.push(j.taskCounts.running) });
    expect(counts).toEqual([0, 1, 2, 2]); // the last one is the phase change to Failed
  });

  it('gives up after timeoutMs, naming the job and its phase', async () => {
    handler = (_req, res) => json(res, 200, view({ phase: 'Running' }));
    await expect(client().waitForJob('j1', { intervalMs: 20, timeoutMs: 100 })).rejects.toMatchObject({ code: 'unavailable', message: 'job j1 did not finish within 100 ms (it is Running)' });
  });

  it('stops waiting when its signal is aborted', async () => {
    handler = (_req, res) => json(res, 200, view({ phase: 'Queued' }));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const started = Date.now();
    await expect(client().waitForJob('j1', { intervalMs: 10_000, signal: ac.signal })).rejects.toMatchObject({ code: 'unavailable', details: { id: 'j1' } });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('backoff', () => {
  it.each([
    // attempt, Retry-After, max, body retryAfterSeconds → ms
    [0, '2', 10_000, undefined, 2000], // Retry-After in seconds wins
    [3, '0.5', 10_000, 9, 500], // the header wins over the body
    [0, '60', 5_000, undefined, 5000], // capped by max
    [0, null, 10_000, 1.5, 1500], // no header: the body's retryAfterSeconds
  ])('backoff(attempt %i, Retry-After %s, max %i, body %s) = %i ms', (attempt, ra, max, body, expected) => {
    expect(backoff(attempt, ra, max, body)).toBe(expected);
  });

  it('is exponential from 200 ms with ±50% jitter when the server says nothing', () => {
    for (let attempt = 0; attempt < 4; attempt++) {
      const ms = backoff(attempt, undefined);
      // 200 × 2^attempt × [0.5, 1.5)
      expect(ms).toBeGreaterThanOrEqual(100 * 2 ** attempt);
      expect(ms).toBeLessThan(300 * 2 ** attempt);
    }
  });

  it.each([
    ['3', 3000],
    ['Thu, 01 Jan 2026 00:00:05 GMT', 5000], // an HTTP-date 5 s after `now`
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0], // in the past: now
    ['soon', undefined],
    ['', undefined],
  ])('retryAfterMs(%j) = %s', (header, expected) => {
    expect(retryAfterMs(header, Date.parse('2026-01-01T00:00:00Z'))).toBe(expected);
  });
});

describe('event streams', () => {
  it('resumes a broken stream with Last-Event-ID and ends at the terminal view', async () => {
    const lastIds: Array<string | undefined> = [];
    handler = (req, res) => {
      if (!req.url!.endsWith('/events')) return json(res, 200, view({ phase: 'Running' })); // the check after a break
      lastIds.push(req.headers['last-event-id'] as string | undefined);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (lastIds.length === 1) {
        // First connection: one event, a keep-alive, then the connection breaks.
        res.write(`id: 7\nevent: job\ndata: ${JSON.stringify(view({ phase: 'Running' }))}\n\n: keepalive\n\n`);
        setTimeout(() => res.destroy(), 20);
        return;
      }
      res.end(`id: 9\nevent: job\ndata: ${JSON.stringify(view({ phase: 'Succeeded' }))}\n\n`);
    };
    const phases: string[] = [];
    const last = await new JobHandle(client({ maxRetryDelayMs: 10 }), 'j1', view()).wait({ onUpdate: (j) => phases.push(j.phase) });
    expect(phases).toEqual(['Running', 'Succeeded']);
    expect(last.phase).toBe('Succeeded');
    expect(lastIds).toEqual([undefined, '7']);
  });
});
