import type { JobRecord } from '@batchapi/api';
import { admissionRefusal, queueHeadroom } from './admit';

const job = (resources: Record<string, number>): JobRecord => ({
  id: 'j',
  tenant: 't',
  queue: 'q',
  phase: 'Submitted',
  createdAt: 0,
  pending: [],
  counts: { succeeded: 0, failed: 0, cancelled: 0 },
  spec: { name: 'j', command: ['x'], env: {}, resources, tasks: 1, priority: 0, labels: {} },
});

describe('admissionRefusal', () => {
  const tenant = { name: 't', weight: 1 };
  const queue = { name: 'q', tenant: 't', nominal: { cpu: 4000 } };
  it.each([
    ['admits a task within nominal', job({ cpu: 4000 }), tenant, queue, undefined],
    ['refuses an unknown tenant', job({ cpu: 1 }), undefined, queue, 'unknown_tenant'],
    ['refuses a queue of another tenant', job({ cpu: 1 }), tenant, { ...queue, tenant: 'other' }, 'unknown_queue'],
    // 4001 millicores > 4000 nominal
    ['refuses a task over nominal', job({ cpu: 4001 }), tenant, queue, 'exceeds_quota'],
    ['does not limit a dimension without nominal', job({ memory: 1e12 }), tenant, queue, undefined],
  ])('%s', (_n, j, t, q, code) => {
    expect(admissionRefusal(j, t, q)?.code).toBe(code);
  });
});

describe('queueHeadroom', () => {
  it('is nominal minus used, never negative', () => {
    // cpu: 4000 − 1500 = 2500; memory: 100 − 300 → 0
    expect(queueHeadroom({ cpu: 4000, memory: 100 }, { cpu: 1500, memory: 300 })).toEqual({ cpu: 2500, memory: 0 });
  });
});
