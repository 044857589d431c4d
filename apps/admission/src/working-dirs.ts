/**
 * `working_dir` packages through the API (issue 15): `GET`/`HEAD /v1/blobs/working-dirs/{digest}`
 * (is it uploaded?), `PUT` of the package (verified against its digest and the size bound, kept
 * once per tenant and digest in the blob store under `workingDirKey`), and the check at submit
 * that a job's `workingDir` is its tenant's.
 */
import { ApiError, ErrorCode, parseWith, type Principal, WorkingDirDigestSchema, type WorkingDirView } from '@batchapi/api';
import { type BlobStore, checkWorkingDir, DEFAULT_WORKING_DIR_MAX_BYTES, WORKING_DIR_CONTENT, workingDirKey } from '@batchapi/blobs';
import { BLOBS, CLOCK, type Clock, SERVICE, type ServiceContext, systemClock } from '@batchapi/runtime';
import { Metric } from '@batchapi/telemetry';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';

/** Injection token of the largest working dir accepted (its tar, bytes). */
export const WORKING_DIR_MAX_BYTES = Symbol('WorkingDirMaxBytes');

/** Media types a package is uploaded as. */
export const WORKING_DIR_MEDIA_TYPES = ['application/gzip', 'application/octet-stream'];

/**
 * Largest upload body for a tar of `maxBytes`: gzip can grow incompressible bytes by a little
 * (5 bytes per 16 KiB block and its header), so a tar at the bound still fits.
 */
export const uploadLimitOf = (maxBytes: number) => maxBytes + Math.ceil(maxBytes / 1000) + 1024;

@Injectable()
export class WorkingDirsService {
  private readonly uploads: Counter;

  constructor(
    @Inject(SERVICE) ctx: ServiceContext,
    @Optional() @Inject(BLOBS) private readonly blobs?: BlobStore,
    @Optional() @Inject(WORKING_DIR_MAX_BYTES) private readonly maxBytes: number = DEFAULT_WORKING_DIR_MAX_BYTES,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.uploads = new Counter({
      name: Metric.admissionWorkingDirUploads,
      help: 'Working dir uploads by outcome (stored, already_stored, refused)',
      labelNames: ['outcome'],
      registers: [ctx.registry],
    });
  }

  /** The package `digest` of `tenant`; undefined when it was never uploaded (or the store dropped it). */
  async find(tenant: string, digest: string): Promise<WorkingDirView | undefined> {
    const key = workingDirKey(tenant, digest);
    const [info] = await this.store().list(key, 1);
    return info?.key === key ? { digest, sizeBytes: info.sizeBytes, createdAt: info.createdAt } : undefined;
  }

  /** `GET /v1/blobs/working-dirs/{digest}`. @throws ApiError not_found */
  async get(principal: Principal, digestParam: string): Promise<WorkingDirView> {
    const digest = parseWith(WorkingDirDigestSchema, digestParam, 'digest');
    const found = await this.find(principal.tenant, digest);
    if (!found) throw new ApiError(ErrorCode.NotFound, `working dir ${digest} has not been uploaded by tenant ${principal.tenant}`, { id: digest });
    return found;
  }

  /**
   * `PUT /v1/blobs/working-dirs/{digest}`: keeps the package once it is checked to be the gzip
   * of the tar `digest` names, at most the size bound. An upload of a digest already kept stores
   * nothing (`created: false`).
   * @throws ApiError digest_mismatch (400) naming `digest`, payload_too_large (413), unavailable (503) without a blob store
   */
  async put(principal: Principal, digestParam: string, body: unknown): Promise<{ view: WorkingDirView; created: boolean }> {
    const digest = parseWith(WorkingDirDigestSchema, digestParam, 'digest');
    const store = this.store();
    if (!Buffer.isBuffer(body)) throw new ApiError(ErrorCode.InvalidArgument, 'send the package as application/gzip', { field: '(body)' });
    const existing = await this.find(principal.tenant, digest);
    if (existing) {
      this.uploads.inc({ outcome: 'already_stored' });
      return { view: existing, created: false };
    }
    const problem = await checkWorkingDir(body, digest, this.maxBytes);
    if (problem) {
      this.uploads.inc({ outcome: 'refused' });
      if (problem.kind === 'too_large') {
        throw new ApiError(
          ErrorCode.PayloadTooLarge,
          `the working dir's tar is over ${problem.maxBytes} bytes (BATCH_WORKING_DIR_MAX_BYTES); leave large files out with .batchignore`,
          { field: '(body)' },
        );
      }
      const why = problem.kind === 'not_gzip' ? `the body is not gzip (${problem.detail})` : `the body's tar has digest ${problem.actual}`;
      throw new ApiError(ErrorCode.DigestMismatch, `digest: ${why}, not ${digest}; upload the gzip of the tar the digest was computed from`, {
        field: 'digest',
      });
    }
    const now = this.clock.now();
    await store.put(workingDirKey(principal.tenant, digest), body, WORKING_DIR_CONTENT, now);
    this.uploads.inc({ outcome: 'stored' });
    return { view: { digest, sizeBytes: body.length, createdAt: now }, created: true };
  }

  /**
   * Refuses a job whose working dir its tenant has not uploaded.
   * @param field - where the digest is in the request, e.g. `workingDir.digest` or `steps[2].job.workingDir.digest`
   * @throws ApiError unknown_working_dir (422) naming `field`; unavailable (503) without a blob store
   */
  async requireUploaded(tenant: string, digest: string, field: string): Promise<void> {
    if (await this.find(tenant, digest)) return;
    throw new ApiError(
      ErrorCode.UnknownWorkingDir,
      `${field}: tenant ${tenant} has no working dir ${digest}; upload it first (batch submit --working-dir, or PUT /v1/blobs/working-dirs/${digest})`,
      { field, id: digest },
    );
  }

  private store(): BlobStore {
    if (this.blobs) return this.blobs;
    throw new ApiError(
      ErrorCode.Unavailable,
      'working dirs need a blob store and this admission replica has none (set BATCH_BLOB_STORE, or BATCH_HISTORY_URL for the history database)',
      { retryAfterSeconds: 60 },
    );
  }
}
