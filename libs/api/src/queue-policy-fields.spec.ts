import { parseWith, PutQueueSchema, toQueue } from './schemas';

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
