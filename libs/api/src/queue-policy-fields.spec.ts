import { ClusterConfigSchema, parseWith, PutQueueSchema, PutTenantSchema, toQueue, toTenant } from './schemas';

const put = (body: object) => toQueue('q', parseWith(PutQueueSchema, { tenant: 't', ...body }));

describe('queue policy fields: priority aging and fair-share prices', () => {
  it('keeps them on the queue record, 0 included (an explicit "off" over the cluster-wide setting)', () => {
    expect(put({ priorityAgingPerHour: 0, priorityAgingMax: 0 })).toMatchObject({ priorityAgingPerHour: 0, priorityAgingMax: 0 });
    expect(put({ prices: { 'gpu:H100': 4, cpu: 0.02, 'example.com/fpga': 1 } }).prices).toEqual({ 'gpu:H100': 4, cpu: 0.02, 'example.com/fpga': 1 });
    expect(put({})).not.toHaveProperty('prices');
  });

  it.each([
    ['an aging cap over the priority range', { priorityAgingMax: 2001 }, 'priorityAgingMax'],
    ['a fractional aging cap', { priorityAgingMax: 1.5 }, 'priorityAgingMax'],
    ['a negative aging rate', { priorityAgingPerHour: -1 }, 'priorityAgingPerHour'],
    ['an aging rate over 1e6', { priorityAgingPerHour: 1e7 }, 'priorityAgingPerHour'],
    ['a price of an unknown resource', { prices: { disk: 1 } }, 'prices.disk'],
    ['a negative price', { prices: { gpu: -1 } }, 'prices.gpu'],
    ['over 64 prices', { prices: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`gpu:m${i}`, 1])) }, 'prices'],
  ])('refuses %s, naming the field', (_name, body, field) => {
    expect(() => put(body)).toThrow(expect.objectContaining({ name: 'ApiError', details: expect.objectContaining({ field }) }));
  });
});

describe('running caps: maxRunningTasks and gpuHoursPerDay of a queue and of a tenant', () => {
  const tenant = (body: object) => toTenant('t', parseWith(PutTenantSchema, body));

  it('keeps them on the records, 0 included (0 starts nothing)', () => {
    expect(put({ maxRunningTasks: 0, gpuHoursPerDay: 0 })).toMatchObject({ maxRunningTasks: 0, gpuHoursPerDay: 0 });
    expect(put({ maxRunningTasks: 50, gpuHoursPerDay: 12.5 })).toMatchObject({ maxRunningTasks: 50, gpuHoursPerDay: 12.5 });
    expect(put({})).not.toHaveProperty('maxRunningTasks');
    expect(tenant({ maxRunningTasks: 100, gpuHoursPerDay: 500 })).toEqual({ name: 't', weight: 1, maxRunningTasks: 100, gpuHoursPerDay: 500 });
    expect(tenant({})).toEqual({ name: 't', weight: 1 });
  });

  it('takes them in the cluster config file', () => {
    const c = parseWith(ClusterConfigSchema, {
      tenants: [{ name: 'vision', maxRunningTasks: 100, gpuHoursPerDay: 500 }],
      queues: [{ name: 'ml', tenant: 'vision', maxRunningTasks: 50 }],
    });
    expect(c.tenants[0]).toMatchObject({ maxRunningTasks: 100, gpuHoursPerDay: 500 });
    expect(c.queues[0]).toMatchObject({ maxRunningTasks: 50 });
  });

  it.each([
    ['a fractional task cap', { maxRunningTasks: 1.5 }, 'maxRunningTasks'],
    ['a negative task cap', { maxRunningTasks: -1 }, 'maxRunningTasks'],
    ['a task cap over 1e9', { maxRunningTasks: 1e9 + 1 }, 'maxRunningTasks'],
    ['a negative GPU-hour budget', { gpuHoursPerDay: -0.5 }, 'gpuHoursPerDay'],
    ['a GPU-hour budget over 1e7', { gpuHoursPerDay: 1e7 + 1 }, 'gpuHoursPerDay'],
    ['a GPU-hour budget that is not a number', { gpuHoursPerDay: '10' }, 'gpuHoursPerDay'],
  ])('refuses %s on a queue and on a tenant, naming the field', (_name, body, field) => {
    const named = expect.objectContaining({ name: 'ApiError', details: expect.objectContaining({ field }) });
    expect(() => put(body)).toThrow(named);
    expect(() => tenant(body)).toThrow(named);
  });
});
