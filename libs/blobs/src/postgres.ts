/** Blobs in the history database (chunked rows; see libs/history/src/blobs.ts): the default blob store where a history store runs. */
import type { BlobInfo, HistoryStore } from '@batchapi/history';
import { type BlobContent, type BlobStore, MAX_BLOB_LIST, type StoredBlob } from './blob-store';

export class PostgresBlobStore implements BlobStore {
  readonly kind = 'postgres';

  /**
   * @param history - the history store the blobs live beside; migrated (migration 6 makes the tables)
   * @param owned - whether `close()` closes `history` too. @default true
   */
  constructor(
    private readonly history: HistoryStore,
    private readonly owned = true,
  ) {}

  put(key: string, body: Buffer, content: BlobContent, now: number): Promise<void> {
    return this.history.putBlob({ key, ...content, sizeBytes: body.length, createdAt: now }, body);
  }

  get(key: string): Promise<StoredBlob | undefined> {
    return this.history.getBlob(key);
  }

  list(prefix: string, limit: number): Promise<BlobInfo[]> {
    return this.history.listBlobs(prefix, Math.min(limit, MAX_BLOB_LIST));
  }

  async close(): Promise<void> {
    if (this.owned) await this.history.close();
  }
}
