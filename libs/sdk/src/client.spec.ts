/** The SDK against a real HTTP server on loopback (no mocked fetch). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApiError, BatchClient, backoff } from './index';

let server: Server;
let url: string;
let handler: (req: IncomingMessage, res: ServerResponse, body: string) => void;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

const view = { id: 'j1', phase: 'Queued', taskCounts: { pending: 1 } };

it('retries a 503 after Retry-After with the same Idempotency-Key, then returns the job', async () => {
  const keys: string[] = [];
  const times: number[] = [];
  handler = (req, res) => {
    keys.push(String(req.headers['idempotency-key']));
    times.push(Date.now());
    if (keys.length < 3) {
      res.writeHead(503, { 'retry-after': '0.2', 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'unavailable', message: 'busy' } }));
    } else res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(view));
  };
  const client = new BatchClient({ url, token: 't' });
  expect(await client.submitJob({ command: ['true'] })).toEqual(view);
  expect(keys).toHaveLength(3);
  expect(new Set(keys).size).toBe(1);
  // Retry-After 0.2 s was honored between attempts
  expect(times[1] - times[0]).toBeGreaterThanOrEqual(180);
});

it('decodes an error body into an ApiError with its code and field, without retrying a 400', async () => {
  let calls = 0;
  handler = (_req, res) => {
    calls++;
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'invalid_argument', message: 'tasks: too small', field: 'tasks' } }));
  };
  const err = await new BatchClient({ url, token: 't' }).submitJob({ command: ['true'], tasks: 0 }).catch((e) => e);
  expect(err).toBeInstanceOf(ApiError);
  expect(err).toMatchObject({ code: 'invalid_argument', status: 400, details: { field: 'tasks' } });
  expect(calls).toBe(1);
});

it('sends the bearer token and streams logs chunk by chunk', async () => {
  handler = (req, res) => {
    expect(req.headers.authorization).toBe('Bearer secret');
    expect(req.url).toBe('/v1/jobs/j1/tasks/2/logs?stream=stderr&follow=true');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('line 1\n');
    setTimeout(() => res.end('line 2\n'), 50);
  };
  const chunks: string[] = [];
  for await (const c of new BatchClient({ url, token: 'secret' }).logs('j1', 2, { stream: 'stderr', follow: true })) chunks.push(c);
  expect(chunks.join('')).toBe('line 1\nline 2\n');
});

it('waits for a terminal phase and reports each change once', async () => {
  const phases = ['Queued', 'Running', 'Running', 'Succeeded'];
  let i = 0;
  handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...view, phase: phases[Math.min(i++, 3)] }));
  const seen: string[] = [];
  const done = await new BatchClient({ url, token: 't' }).waitForJob('j1', { intervalMs: 5, onUpdate: (j) => seen.push(j.phase) });
  expect(done.phase).toBe('Succeeded');
  expect(seen).toEqual(['Queued', 'Running', 'Succeeded']);
});

it.each([
  // Retry-After wins when present; capped by maxMs
  [0, '2', 10_000, 2000],
  [0, '60', 5_000, 5000],
])('backoff(attempt %i, Retry-After %s, max %i) = %i ms', (attempt, ra, max, expected) => {
  expect(backoff(attempt, ra, max)).toBe(expected);
});
