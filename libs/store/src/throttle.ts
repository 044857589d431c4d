/**
 * Token buckets shared by every admission replica. A bucket lives in one etcd key; a replica
 * takes tokens from it by compare-and-swap, a chunk at a time, and spends the chunk locally,
 * so the limit holds across replicas while a busy tenant costs about ten etcd writes a
 * second per replica rather than one per request.
 */
import type { EtcdStore } from './etcd';

/** A bucket as stored. */
export interface BucketRecord {
  /** Tokens left at `at`. */
  tokens: number;
  /** Epoch ms of the last take. */
  at: number;
}

/** A token bucket's settings. */
export interface BucketLimit {
  /** Tokens added per second. */
  rate: number;
  /** Most tokens the bucket holds. */
  burst: number;
}

/** Tokens in the bucket at `now`: what was left plus what the rate added since, at most `burst`. Pure. */
export function refill(b: BucketRecord | undefined, limit: BucketLimit, now: number): number {
  if (!b) return limit.burst;
  return Math.min(limit.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * limit.rate);
}

/** What a take got. */
export interface Take {
  /** Tokens granted (0 or `want`..`chunk`). */
  granted: number;
  /** When nothing was granted: milliseconds until `want` tokens will be there. */
  retryAfterMs: number;
}

/**
 * Takes at least `want` and up to `chunk` tokens from the bucket at `key`, or none when fewer
 * than `want` are there. Compare-and-swap on the bucket's revision; retried on conflict.
 */
export async function takeTokens(store: EtcdStore, key: string, limit: BucketLimit, want: number, chunk: number, now: number): Promise<Take> {
  for (let attempt = 0; attempt < 16; attempt++) {
    const cur = await store.get<BucketRecord>(key);
    const tokens = refill(cur?.value, limit, now);
    if (tokens < want) return { granted: 0, retryAfterMs: Math.ceil(((want - tokens) / limit.rate) * 1000) };
    const granted = Math.min(Math.max(want, chunk), Math.floor(tokens));
    const next: BucketRecord = { tokens: tokens - granted, at: Math.max(now, cur?.value.at ?? 0) };
    const res = await store.txn([cur ? { key, modRevision: cur.modRevision } : { key, absent: true }], [{ put: key, value: next }]);
    if (res.succeeded) return { granted, retryAfterMs: 0 };
  }
  // Heavy contention: behave as if empty for a moment rather than spin.
  return { granted: 0, retryAfterMs: 100 };
}
