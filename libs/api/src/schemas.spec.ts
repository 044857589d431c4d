import { parseSubmit } from './schemas';

describe('parseSubmit items', () => {
  it('sets tasks from items when tasks is absent, and keeps the items', () => {
    const { spec } = parseSubmit({ command: ['x'], items: [1, { a: 2 }, 'c'] });
    expect(spec.tasks).toBe(3);
    expect(spec.items).toEqual([1, { a: 2 }, 'c']);
  });

  it.each([
    ['a length other than tasks', { command: ['x'], tasks: 2, items: [1, 2, 3] }],
    ['no items', { command: ['x'], items: [] }],
    ['over 256 KiB of JSON', { command: ['x'], items: ['a'.repeat(150_000), 'b'.repeat(150_000)] }],
  ])('refuses %s naming the field items', (_name, body) => {
    expect(() => parseSubmit(body)).toThrow(expect.objectContaining({ name: 'ApiError', details: expect.objectContaining({ field: 'items' }) }));
  });
});
