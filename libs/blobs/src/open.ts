/** A blob store from settings (the services read them with `blobSettingsFromEnv` of libs/runtime). */
import { HistoryStore } from '@batchapi/history';
import type { BlobStore } from './blob-store';
import { PostgresBlobStore } from './postgres';
import { S3BlobStore, type S3BlobStoreOptions } from './s3';

/** Where blobs go: the history database, an S3-compatible bucket, or nowhere (logs stay on their node only). */
export type BlobSettings = { kind: 'none' } | { kind: 'postgres'; historyUrl: string } | ({ kind: 's3' } & S3BlobStoreOptions);

/** The store `settings` name; undefined for `none`. A PostgreSQL store opens a small pool of its own (2 connections). */
export function openBlobStore(settings: BlobSettings): BlobStore | undefined {
  switch (settings.kind) {
    case 'none':
      return undefined;
    case 'postgres':
      return new PostgresBlobStore(HistoryStore.connect(settings.historyUrl, { maxConnections: 2 }));
    case 's3':
      return new S3BlobStore(settings);
  }
}
