/**
 * What one job may carry, and the one way sizes are measured: UTF-8 bytes of JSON, which is
 * what etcd stores and counts against its request limit. The limits make sure any accepted
 * job can be bound: its record and one task's binding always fit one transaction of the
 * store's chunker (`MAX_TXN_BYTES`, 1 MiB, under etcd's 1.5 MiB request limit).
 */
import { ApiError, ErrorCode } from './errors';
import type { JobRecord, JobSpec } from './model';

/** Most environment variables of one job (Linux takes ~2 MiB of argv and environment together). */
export const MAX_ENV_ENTRIES = 512;
/** Largest value of one environment variable, in UTF-8 bytes (Linux refuses one string over 128 KiB). */
export const MAX_ENV_VALUE_BYTES = 32 * 1024;
/** Most arguments of `command`, the program included. */
export const MAX_COMMAND_ARGS = 1024;
/** Most labels of one job (workflow steps get two more: `batch.workflow`, `batch.step`). */
export const MAX_LABELS = 64;
/** Most node-label pairs a job's selector may require. */
export const MAX_SELECTOR_ENTRIES = 32;
/** Most tolerations of one job. */
export const MAX_TOLERATIONS = 64;
/** Most entries of `items` (one per task of a map job). */
export const MAX_ITEMS = 100_000;
/**
 * Largest `items` of one job, in UTF-8 bytes of JSON: a binding carries its slice of them
 * beside the job record in one transaction. Larger inputs go by reference (URIs).
 */
export const MAX_ITEMS_BYTES = 256 * 1024;
/**
 * Largest job record, in UTF-8 bytes of JSON, as stored at submit (with the widest id, tenant,
 * queue and trace context). The smallest bind writes the record and one task's binding (which
 * copies command, env, selector, image and one item, so it is never larger than the record):
 * 2 × 384 KiB + the group status and node allocation (a few KiB) + keys ≈ 773 KiB, under the
 * 1 MiB a transaction may carry, leaving ~250 KiB for what the record gains later (pending
 * ranges of retried tasks, times, a reason).
 */
export const MAX_JOB_RECORD_BYTES = 384 * 1024;

/** Size of a value as stored: UTF-8 bytes of its JSON. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

/** UTF-8 bytes of a string. */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s);
}

/** The spec fields a record's size is checked part by part against, largest named in the error. */
const SIZED_FIELDS = ['command', 'env', 'items', 'labels', 'selector', 'tolerations', 'retry', 'image', 'name', 'python'] as const;

/**
 * Bytes of the job record a spec makes when stored at submit, with the widest values of what
 * the spec does not decide (id, tenant, queue, trace context, times): what the record will
 * weigh whoever submits it (admission, bulk submit, a workflow step).
 */
export function storedJobBytes(spec: JobSpec): number {
  const widest: JobRecord = {
    id: 'x'.repeat(64),
    tenant: 'x'.repeat(63),
    queue: 'x'.repeat(63),
    spec,
    phase: 'Submitted',
    pending: [{ start: 0, end: spec.tasks, attempt: 1 }],
    counts: { succeeded: 0, failed: 0, cancelled: 0 },
    traceparent: `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`,
    createdAt: 8_640_000_000_000,
  };
  return jsonBytes(widest);
}

/**
 * Refuses a spec whose stored record would be over `MAX_JOB_RECORD_BYTES`: `payload_too_large`
 * (413) naming the largest part of the spec as the field. Pure.
 */
export function checkJobRecordSize(spec: JobSpec): void {
  const bytes = storedJobBytes(spec);
  if (bytes <= MAX_JOB_RECORD_BYTES) return;
  const parts = SIZED_FIELDS.map((f) => ({ f, n: spec[f] === undefined ? 0 : jsonBytes(spec[f]) })).sort((a, b) => b.n - a.n);
  const { f, n } = parts[0];
  throw new ApiError(
    ErrorCode.PayloadTooLarge,
    `${f}: the job would be stored as ${bytes} bytes of JSON, over the ${MAX_JOB_RECORD_BYTES}-byte limit of a job; ${f} is the largest part (${n} bytes): pass large values by reference (a file or URI the task reads) and submit again`,
    { field: f },
  );
}
