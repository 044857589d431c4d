/**
 * Revision checks over a key prefix, for a view (an informer's cache) that must be known
 * complete up to a revision — e.g. a new leader's caches up to the revision it won at — without
 * waiting for an event or a progress notification of an idle prefix.
 */
import { GRPCOutOfRangeError, Range } from 'etcd3';
import type { EtcdStore } from './etcd';

/**
 * True when nothing under `prefix` changed in the revisions (`after`, `upTo`]: no key was
 * created, updated or deleted. Two small reads: at `upTo`, the key count and the newest mod
 * revision (none after `after`); at `after`, the key count (the same, so none was deleted —
 * every key left at `upTo` existed, unchanged, at `after`). False when it changed, and when
 * `after` was compacted away (then nothing can be told; wait for the view itself instead).
 * Throws when etcd does not answer.
 */
export async function prefixUnchangedBetween(store: EtcdStore, prefix: string, after: bigint, upTo: bigint): Promise<boolean> {
  if (upTo <= after) return true;
  if (after <= 0n) return false; // revision 0 would read the latest state, not the state at 0
  const { start: key, end: range_end } = Range.prefix(prefix);
  try {
    const [newest, then] = await Promise.all([
      // etcd applies no mod-revision filter to a count: sort by mod revision instead, newest first.
      store.client.kv.range({ key, range_end, revision: String(upTo), keys_only: true, sort_order: DESCEND, sort_target: BY_MOD_REVISION, limit: 1 }),
      store.client.kv.range({ key, range_end, revision: String(after), count_only: true }),
    ]);
    const modifiedAfter = newest.kvs.length > 0 && BigInt(newest.kvs[0].mod_revision) > after;
    return !modifiedAfter && newest.count === then.count;
  } catch (err) {
    if (err instanceof GRPCOutOfRangeError) return false; // `after` compacted
    throw err;
  }
}

// Numeric enum values of etcd's range request (the client sends them as numbers).
const DESCEND = 2;
const BY_MOD_REVISION = 3;
