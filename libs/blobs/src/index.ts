/**
 * `@batchapi/blobs`: what outlives a node (issue 20, "Logs and artifacts outlive their node").
 * When an attempt ends the executor uploads its stdout and stderr (`captureLog`: the tail, capped,
 * gzip) under `logKey`; admission serves a live attempt's log from its node and an ended one's
 * from here. Two stores behind `BlobStore`: the history database (`PostgresBlobStore`) and
 * S3-compatible object storage (`S3BlobStore`); `openBlobStore` picks one from settings.
 */
export * from './blob-store';
export { BlobStoreUnavailableError } from './errors';
export * from './log-capture';
export * from './open';
export { PostgresBlobStore } from './postgres';
export * from './working-dir';
export { S3BlobStore, type S3BlobStoreOptions } from './s3';
export { findVersitygw, type LocalS3, startS3Server, VERSITYGW_VERSION } from './s3-server';
