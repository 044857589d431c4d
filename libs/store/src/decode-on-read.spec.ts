/** An informer event's value is decoded when a handler first reads it, once, and reads like a plain property. */
import { withValueDecodedOnRead } from './etcd';

const raw = (v: unknown) => Buffer.from(JSON.stringify(v));
const base = { type: 'put' as const, key: '/p/a', modRevision: '7', createRevision: '5' };

describe('withValueDecodedOnRead', () => {
  it('decodes nothing until the value is read: a handler reading only the key and revision never meets bad JSON', () => {
    const ev = withValueDecodedOnRead<unknown>(base, Buffer.from('{not json'));
    expect(ev.key).toBe('/p/a');
    expect(ev.modRevision).toBe('7');
    expect(() => ev.value).toThrow(SyntaxError);
  });

  it('decodes once and hands every reader the same object', () => {
    const ev = withValueDecodedOnRead<{ n: number }>(base, raw({ n: 1 }));
    const first = ev.value;
    expect(first).toEqual({ n: 1 });
    expect(ev.value).toBe(first);
  });

  it.each([
    // [what reads the event, what it gets]
    { how: 'spread', read: (ev: object) => ({ ...ev }), want: { ...base, value: { n: 2 } } },
    { how: 'JSON.stringify', read: (ev: object) => JSON.parse(JSON.stringify(ev)), want: { ...base, value: { n: 2 } } },
    { how: 'Object.keys', read: (ev: object) => Object.keys(ev).sort(), want: ['createRevision', 'key', 'modRevision', 'type', 'value'] },
  ])('is an ordinary property to $how', ({ read, want }) => {
    expect(read(withValueDecodedOnRead(base, raw({ n: 2 })))).toEqual(want);
  });

  it('is undefined for an empty value (a delete) and can be set by a handler', () => {
    const del = withValueDecodedOnRead<unknown>({ type: 'delete', key: '/p/a', modRevision: '8' }, Buffer.alloc(0));
    expect(del.value).toBeUndefined();
    expect('value' in del).toBe(true);
    const ev = withValueDecodedOnRead<{ n: number }>(base, raw({ n: 1 }));
    ev.value = { n: 3 };
    expect(ev.value).toEqual({ n: 3 });
  });
});
