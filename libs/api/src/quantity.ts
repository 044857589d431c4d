/**
 * Resource quantities in the Kubernetes vocabulary, normalized to integers:
 * `cpu` in millicores, `memory` in bytes, `gpu` in thousandths of a device (so 0.5 GPU = 500),
 * any extended `domain/name` resource as an integer count.
 */
import { ApiError, ErrorCode } from './errors';

/** Normalized resource amounts; see the module header for units. */
export type ResourceVector = Record<string, number>;

/** A resource request as users write it: `{"cpu": "500m", "memory": "2Gi", "gpu": 1}`. */
export type ResourceQuantities = Record<string, string | number>;

const MEMORY_SUFFIX: Record<string, number> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  k: 1e3,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
};
const EXTENDED = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** Milli-units in one GPU device. */
export const GPU_MILLI = 1000;

function bad(field: string, value: unknown, what: string): never {
  throw new ApiError(ErrorCode.InvalidArgument, `${field}: ${JSON.stringify(value)} is not ${what}`, { field });
}

/** Parses a CPU quantity (`"500m"`, `"2"`, `2.5`) into millicores. */
export function parseCpu(value: string | number, field = 'cpu'): number {
  const s = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(s);
  if (!m) bad(field, value, 'a CPU quantity such as "500m", "2" or 2.5');
  const milli = m[2] === 'm' ? Number(m[1]) : Number(m[1]) * 1000;
  if (!Number.isFinite(milli) || milli > 1e12 || (m[2] === 'm' && !Number.isInteger(milli))) bad(field, value, 'a CPU quantity in range');
  return Math.round(milli);
}

/** Parses a memory quantity (`"2Gi"`, `"512M"`, `1073741824`) into bytes. */
export function parseMemory(value: string | number, field = 'memory'): number {
  const s = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)([KMGTPk]i?)?$/.exec(s);
  if (!m || (m[2] && !(m[2] in MEMORY_SUFFIX))) bad(field, value, 'a memory quantity such as "512Mi" or "2G"');
  const bytes = Number(m[1]) * MEMORY_SUFFIX[m[2] ?? ''];
  if (!Number.isFinite(bytes) || bytes > 2 ** 60) bad(field, value, 'a memory quantity in range');
  return Math.ceil(bytes);
}

/** Parses a GPU count: an integer number of devices, or a fraction below 1 (a share of one device). */
export function parseGpu(value: string | number, field = 'gpu'): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1024 || (n > 1 && !Number.isInteger(n)) || String(value).trim() === '') {
    bad(field, value, 'a GPU count: an integer, or a fraction below 1');
  }
  return Math.round(n * GPU_MILLI);
}

/** Parses a whole request into a normalized vector. Unknown names must look like `domain/name`. */
export function parseResources(q: ResourceQuantities, field = 'resources'): ResourceVector {
  const out: ResourceVector = {};
  for (const [name, value] of Object.entries(q)) {
    const f = `${field}.${name}`;
    if (name === 'cpu') out.cpu = parseCpu(value, f);
    else if (name === 'memory') out.memory = parseMemory(value, f);
    else if (name === 'gpu') out.gpu = parseGpu(value, f);
    else if (EXTENDED.test(name)) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0 || n > 1e12 || String(value).trim() === '') bad(f, value, 'an integer count');
      out[name] = n;
    } else {
      throw new ApiError(ErrorCode.InvalidArgument, `${f}: unknown resource; use cpu, memory, gpu or an extended "domain/name"`, { field: f });
    }
  }
  return out;
}

/**
 * Parses a quota: like `parseResources`, and also `gpu:<model>` keys (GPUs of one model, e.g.
 * `"gpu:NVIDIA H100 80GB HBM3": 8`), counted like `gpu`.
 */
export function parseQuota(q: ResourceQuantities, field: string): ResourceVector {
  const plain: ResourceQuantities = {};
  const out: ResourceVector = {};
  for (const [name, value] of Object.entries(q)) {
    if (name.startsWith('gpu:') && name.length > 4 && name.length <= 128) out[name] = parseGpu(value, `${field}.${name}`);
    else plain[name] = value;
  }
  return { ...parseResources(plain, field), ...out };
}

/** Formats a normalized vector back to quantities people read: `{"cpu": "1500m", "memory": "2Gi", "gpu": 0.5}`. */
export function formatResources(v: ResourceVector): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [name, n] of Object.entries(v)) {
    if (name === 'cpu') out.cpu = n % 1000 === 0 ? String(n / 1000) : `${n}m`;
    else if (name === 'memory') out.memory = formatBytes(n);
    else if (name === 'gpu' || name.startsWith('gpu:')) out[name] = n / GPU_MILLI;
    else out[name] = n;
  }
  return out;
}

function formatBytes(n: number): string {
  for (const [suffix, size] of [
    ['Ti', 1024 ** 4],
    ['Gi', 1024 ** 3],
    ['Mi', 1024 ** 2],
    ['Ki', 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size}${suffix}`;
  }
  return String(n);
}

/** `a + k·b` over the union of names. */
export function addResources(a: ResourceVector, b: ResourceVector, k = 1): ResourceVector {
  const out: ResourceVector = { ...a };
  for (const [name, n] of Object.entries(b)) out[name] = (out[name] ?? 0) + k * n;
  for (const name of Object.keys(out)) if (out[name] === 0) delete out[name];
  return out;
}

/** True when `need` fits in `free` in every dimension (a missing dimension is zero). */
export function fitsIn(need: ResourceVector, free: ResourceVector): boolean {
  for (const [name, n] of Object.entries(need)) if (n > 0 && n > (free[name] ?? 0)) return false;
  return true;
}
