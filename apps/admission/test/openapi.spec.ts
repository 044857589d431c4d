/**
 * The OpenAPI document covers the API as served: every route admission registers with Fastify
 * has an operation with its schemas (and no operation names a route that does not exist);
 * every error code appears under its own status; the document is served without a token.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, openApiDocument, statusOf } from '@batchapi/api';
import type { RunningService } from '@batchapi/runtime';
import { type LocalEtcd, startEtcd } from '@batchapi/store';
import { startAdmission, TokenAuthenticator } from '../src';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let etcd: LocalEtcd;
let admission: RunningService;

beforeAll(async () => {
  etcd = await startEtcd();
  const config = { etcdEndpoints: etcd.endpoints, port: 0, leaseTtlSeconds: 5, logLevel: 'error' };
  admission = await startAdmission({ tokens: new TokenAuthenticator({ tokens: [{ sha256: sha('t'), tenant: 'a', role: 'tenant' }] }), config });
});
afterAll(async () => {
  await admission?.close();
  await etcd?.stop();
});

type Operation = {
  requestBody?: unknown;
  parameters?: Array<{ in: string; name: string }>;
  responses: Record<
    string,
    { content?: Record<string, { schema?: { properties?: { error?: { allOf: Array<{ properties?: { code?: { enum: string[] } } }> } } } }> }
  >;
};
const doc = openApiDocument() as { paths: Record<string, Record<string, Operation>> };
/** `/v1/jobs/:id` and `/v1/jobs::batch` (Fastify) as OpenAPI writes them: `/v1/jobs/{id}`, `/v1/jobs:batch`. */
const toOpenApiPath = (url: string) =>
  url
    .replace(/::/g, '\ue000')
    .replace(/:([A-Za-z_]\w*)/g, '{$1}')
    .replace(/\ue000/g, ':');

describe('GET /openapi.json', () => {
  it('has an operation for every route the service registers, and no operation without a route', () => {
    // HEAD is Fastify's automatic twin of each GET: it answers as the GET without a body.
    // /console/ serves the console's static files, not the API.
    const served = [
      ...new Set(admission.routes.filter((r) => r.method !== 'HEAD' && !r.url.startsWith('/console')).map((r) => `${r.method} ${toOpenApiPath(r.url)}`)),
    ].sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(served.length).toBeGreaterThan(20);
    expect(served).toEqual(documented);
  });

  it('documents each path parameter of a route, and a body for every POST and PUT', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries(ops)) {
        expect([
          method,
          path,
          (op.parameters ?? [])
            .filter((p) => p.in === 'path')
            .map((p) => p.name)
            .sort(),
        ]).toEqual([method, path, inPath]);
        if (method === 'post' || method === 'put') expect([method, path, op.requestBody !== undefined]).toEqual([method, path, true]);
      }
    }
  });

  it('names every error code under its own status', () => {
    const seen = new Map<string, Set<string>>();
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const [status, r] of Object.entries(op.responses)) {
          for (const code of r.content?.['application/json']?.schema?.properties?.error?.allOf[1].properties?.code?.enum ?? []) {
            seen.set(code, (seen.get(code) ?? new Set()).add(status));
          }
        }
      }
    }
    // Codes that are never an answer's status: exceeds_quota is a rejected job's `reason.code` (the quota
    // service decides it after the 201); slow_consumer is the last event of a stream its client stopped reading.
    const notAnswers = new Set<string>(['exceeds_quota', 'slow_consumer']);
    for (const code of Object.values(ErrorCode).filter((c) => !notAnswers.has(c)))
      expect([code, [...(seen.get(code) ?? [])]]).toEqual([code, [String(statusOf[code])]]);
  });

  it('is served without a token, as generated', async () => {
    const res = await fetch(`${admission.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(doc)));
  });
});

// Defects schemathesis found (tools/e2e/test/schemathesis.spec.ts), each kept here as a fast regression test.
describe('answers the documented statuses to what schemathesis sends', () => {
  it.each(['multipart/form-data', 'multipart/form-data; boundary=x', 'application/xml', 'invalid'])(
    'a body sent as %s is a 400 invalid_argument, not a 500',
    async (contentType) => {
      const res = await fetch(`${admission.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: 'Bearer t', 'content-type': contentType },
        body: contentType.startsWith('multipart') ? undefined : '<x/>',
      });
      expect([res.status, ((await res.json()) as { error: unknown }).error]).toEqual([
        400,
        { code: 'invalid_argument', message: 'send the body as application/json', field: '(body)' },
      ]);
    },
  );
});
