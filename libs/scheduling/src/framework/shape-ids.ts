/**
 * Numbers for request shapes: what a placement pass keeps a ranking for (and remembers that no node
 * had room for). Two pieces of work are of one shape when their shape keys (`shapeKey`: the request,
 * the selector, the tolerations, and what else changes the nodes a shape may use) are the same
 * text; `ShapeIds` gives them the same number without writing the key for each: the work of the
 * common kind (numbers for resources, strings for selector values, no tolerations, topology or
 * image) is found by a hash of its values and compared exactly with the first work of its shape,
 * the rest by its key. A pass of 100,000 single-task jobs wrote a JSON key per job and looked it
 * up in two Maps (~7% of the pass). Pure; no I/O.
 */
import type { PendingWork } from '../snapshot';

/**
 * The shape key of `w`: work of equal keys can use the same nodes, ranked the same. With backfill
 * (`withTimeout`), work of one shape but another timeout may backfill where the shape did not: the
 * timeout is part of the shape.
 */
export function shapeKey(w: PendingWork, withTimeout: boolean): string {
  const shape: unknown[] = withTimeout
    ? [w.resources, w.selector ?? null, w.tolerations ?? null, w.timeoutSeconds ?? null]
    : [w.resources, w.selector ?? null, w.tolerations ?? null];
  // Work that names a topology may find no domain where the same shape without one fits.
  if (w.topology) shape.push(w.topology);
  // Work with an image goes only to nodes that run images (ContainerImage): not the plain shape's nodes.
  if (w.image) shape.push('image');
  return JSON.stringify(shape);
}

/** A shape of plain work (see `plainHash`) as first seen: its resources and selector, in order. */
interface PlainShape {
  resourceKeys: string[];
  resources: unknown[];
  /** Undefined: no selector. */
  selectorKeys?: string[];
  selector?: unknown[];
  id: number;
}

/**
 * A number, one per shape key, from 1 up (see the file's comment): `of(a) === of(b)` exactly when
 * `shapeKey(a, withTimeout) === shapeKey(b, withTimeout)`.
 */
export class ShapeIds {
  /** Every shape seen, by key. */
  private readonly byKey = new Map<string, number>();
  /** Shapes of plain work (see `plainHash`), by hash; a hit is compared exactly (`samePlain`). */
  private readonly byHash = new Map<number, PlainShape[]>();

  /**
   * `withTimeout`: the timeout is part of the shape (see `shapeKey`). `oneHash`: every plain shape
   * hashes alike, so only the exact comparison tells them apart (what the tests check it with).
   * @default false
   */
  constructor(
    private readonly withTimeout: boolean,
    private readonly oneHash = false,
  ) {}

  /** Shapes numbered so far. */
  get size(): number {
    return this.byKey.size;
  }

  of(w: PendingWork): number {
    let h = plainHash(w, this.withTimeout);
    if (h === undefined) return this.idOf(shapeKey(w, this.withTimeout));
    if (this.oneHash) h = 0;
    const seen = this.byHash.get(h);
    if (seen) for (let k = 0; k < seen.length; k++) if (samePlain(seen[k], w)) return seen[k].id;
    // A shape new to the hash: numbered by its key, so plain work and other work of one key agree.
    const id = this.idOf(shapeKey(w, this.withTimeout));
    const shape: PlainShape = { resourceKeys: Object.keys(w.resources), resources: Object.values(w.resources), id };
    if (w.selector != null) {
      shape.selectorKeys = Object.keys(w.selector);
      shape.selector = Object.values(w.selector);
    }
    if (seen) seen.push(shape);
    else this.byHash.set(h, [shape]);
    return id;
  }

  private idOf(key: string): number {
    let id = this.byKey.get(key);
    if (id === undefined) this.byKey.set(key, (id = this.byKey.size + 1));
    return id;
  }
}

/**
 * A finite number: two of them are `===` exactly when JSON writes them alike (−0 and 0 both as 0;
 * NaN and ±Infinity, which it writes as null, are not plain).
 */
function plainNumber(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v);
}

/** The low 32 bits of an integer (and a mix of the rest, and of a fraction). */
function hashNumber(v: number): number {
  return (v | 0) ^ ((v / 4294967296) | 0) ^ ((v * 65536) | 0);
}

function hashString(s: string): number {
  let h = s.length;
  for (let k = 0; k < s.length; k++) h = (Math.imul(h, 31) + s.charCodeAt(k)) | 0;
  return h;
}

/**
 * A hash of plain work's shape: resources of plain numbers, a selector of strings (or none), no
 * tolerations (nullish), no topology or image, and no timeout when it counts (`withTimeout`).
 * Undefined for other work (numbered by its key).
 */
function plainHash(w: PendingWork, withTimeout: boolean): number | undefined {
  if (w.tolerations != null || w.topology || w.image || (withTimeout && w.timeoutSeconds != null)) return undefined;
  let h = 1;
  const r = w.resources;
  for (const k in r) {
    const v = r[k];
    if (!plainNumber(v)) return undefined;
    h = (Math.imul(h, 31) + k.length + hashNumber(v)) | 0;
  }
  const sel = w.selector;
  if (sel == null) return h;
  h = (Math.imul(h, 31) + 7) | 0;
  for (const k in sel) {
    const v = sel[k];
    if (typeof v !== 'string') return undefined;
    h = (Math.imul(h, 31) + hashString(k)) | 0;
    h = (Math.imul(h, 31) + hashString(v)) | 0;
  }
  return h;
}

/** The same keys in the same order (`keys`) with `===` values (`values`): of plain work, the same JSON text. */
function sameEntries(keys: readonly string[], values: readonly unknown[], r: Readonly<Record<string, unknown>>): boolean {
  let n = 0;
  for (const k in r) {
    if (keys[n] !== k || values[n] !== r[k]) return false;
    n++;
  }
  return n === keys.length;
}

/** Plain work `w` (see `plainHash`) is of `shape`'s key. */
function samePlain(shape: PlainShape, w: PendingWork): boolean {
  if ((shape.selectorKeys === undefined) !== (w.selector == null)) return false;
  if (!sameEntries(shape.resourceKeys, shape.resources, w.resources)) return false;
  return shape.selectorKeys === undefined || sameEntries(shape.selectorKeys, shape.selector!, w.selector!);
}
