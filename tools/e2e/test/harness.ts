/** Shared pieces of the end-to-end suites: tokens, HTTP calls, waiting. */
import { createHash } from 'node:crypto';
import type { JobView } from '@batchapi/api';

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');
export const TOKENS = {
  tokens: [
    { sha256: sha('tenant-token'), tenant: 'default', role: 'tenant' as const },
    { sha256: sha('other-token'), tenant: 'other', role: 'tenant' as const },
    { sha256: sha('operator-token'), tenant: 'default', role: 'operator' as const },
  ],
};
export const CLUSTER = { tenants: [{ name: 'default' }, { name: 'other' }], queues: [{ name: 'default', tenant: 'default' }] };

export async function api(base: string, method: string, path: string, body?: unknown, token = 'tenant-token') {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: res.status, body: json };
}

/** Polls a job until it reaches a terminal phase or the deadline passes. */
export async function waitForJob(base: string, id: string, ms = 30000): Promise<JobView> {
  const deadline = Date.now() + ms;
  for (;;) {
    const { body } = await api(base, 'GET', `/v1/jobs/${id}`);
    if (['Succeeded', 'Failed', 'Cancelled', 'Rejected'].includes(body.phase) || Date.now() > deadline) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function until(ok: () => Promise<boolean> | boolean, ms = 15000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
