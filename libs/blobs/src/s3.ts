/**
 * Blobs in S3-compatible object storage (AWS S3, or any server speaking its API) through the
 * AWS SDK v3: one object a blob, under `prefix`. Credentials come from the SDK's default chain
 * (environment, shared config, the instance or pod role) unless given.
 */
import type * as S3 from '@aws-sdk/client-s3';
import type { BlobInfo } from '@batchapi/history';
import { type BlobContent, type BlobStore, MAX_BLOB_LIST, type StoredBlob } from './blob-store';
import { BlobStoreUnavailableError } from './errors';

/** Settings of `S3BlobStore`. */
export interface S3BlobStoreOptions {
  /** The bucket (it must exist; the store never creates one). */
  bucket: string;
  /** Prefix of every object key the store writes, e.g. `batchapi/`. @default "" */
  prefix?: string;
  /** The server's URL, for a non-AWS server (e.g. `http://127.0.0.1:7070`). @default AWS's endpoint for `region` */
  endpoint?: string;
  /** @default "us-east-1" */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most non-AWS servers need. @default true when `endpoint` is set */
  forcePathStyle?: boolean;
  /** Static credentials. @default the SDK's default provider chain */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Longest wait for one request's answer, in milliseconds. @default 10000 */
  requestTimeoutMs?: number;
  /** Attempts of one call, the first included (the SDK's standard retry with backoff; every call here is idempotent). @default 3 */
  maxAttempts?: number;
}

/** `x-amz-meta-created-at`: when the blob was put, epoch ms. */
const CREATED_AT = 'created-at';

/** The S3 client, loaded when the first store is made: importing it took ~125 ms of every admission start, and most clusters keep blobs in PostgreSQL. */
function sdk(): typeof S3 {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, see above
  return require('@aws-sdk/client-s3') as typeof S3;
}

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  private readonly s3 = sdk();
  private readonly client: S3.S3Client;
  private readonly prefix: string;

  constructor(private readonly o: S3BlobStoreOptions) {
    this.prefix = o.prefix ?? '';
    this.client = new this.s3.S3Client({
      region: o.region ?? 'us-east-1',
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined,
      ...(o.credentials ? { credentials: o.credentials } : {}),
      maxAttempts: o.maxAttempts ?? 3,
      requestHandler: { requestTimeout: o.requestTimeoutMs ?? 10_000, connectionTimeout: 2_000 },
    });
  }

  async put(key: string, body: Buffer, content: BlobContent, now: number): Promise<void> {
    await this.call(`PutObject ${key}`, () =>
      this.client.send(
        new this.s3.PutObjectCommand({
          Bucket: this.o.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentType: content.contentType,
          ...(content.contentEncoding === 'gzip' ? { ContentEncoding: 'gzip' } : {}),
          Metadata: { [CREATED_AT]: String(now) },
        }),
      ),
    );
  }

  async get(key: string): Promise<StoredBlob | undefined> {
    return this.call(`GetObject ${key}`, async () => {
      try {
        const out = await this.client.send(new this.s3.GetObjectCommand({ Bucket: this.o.bucket, Key: this.prefix + key }));
        const body = Buffer.from(await out.Body!.transformToByteArray());
        return {
          info: {
            key,
            contentType: out.ContentType ?? 'application/octet-stream',
            contentEncoding: out.ContentEncoding === 'gzip' ? 'gzip' : 'identity',
            sizeBytes: body.length,
            createdAt: Number(out.Metadata?.[CREATED_AT] ?? out.LastModified?.getTime() ?? 0),
          },
          body,
        };
      } catch (err) {
        if (err instanceof this.s3.S3ServiceException && (err.name === 'NoSuchKey' || err.$metadata.httpStatusCode === 404)) return undefined;
        throw err;
      }
    });
  }

  async list(prefix: string, limit: number): Promise<BlobInfo[]> {
    const out = await this.call(`ListObjectsV2 ${prefix}`, () =>
      this.client.send(new this.s3.ListObjectsV2Command({ Bucket: this.o.bucket, Prefix: this.prefix + prefix, MaxKeys: Math.min(limit, MAX_BLOB_LIST) })),
    );
    return (out.Contents ?? []).map((o) => ({
      key: o.Key!.slice(this.prefix.length),
      // a listing does not carry an object's headers: read the blob for them
      contentType: 'application/octet-stream',
      contentEncoding: 'identity',
      sizeBytes: o.Size ?? 0,
      createdAt: o.LastModified?.getTime() ?? 0,
    }));
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err as Error & { $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode;
      throw new BlobStoreUnavailableError(`the object store did not answer ${what} (${e.name}${status ? ` ${status}` : ''}: ${e.message})`, err);
    }
  }
}
