/** Settings every service reads from its environment: their schema (`SERVICE_ENV`) and the parsed `ServiceConfig`. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { BlobSettings } from '@batchapi/blobs';
import { ConfigError, envEnum, envList, envNumber, envString, parseEnv } from './env';

/** What a service process needs to start. */
export interface ServiceConfig {
  /** etcd client URLs (`BATCH_ETCD_ENDPOINTS`, comma-separated). @default ["http://127.0.0.1:2379"] */
  etcdEndpoints: string[];
  /** Root prefix of keys (`BATCH_ETCD_PREFIX`). @default "/batch/" */
  etcdPrefix: string;
  /** HTTP listen address (`BATCH_HOST`). @default "127.0.0.1" */
  host: string;
  /** HTTP port (`BATCH_PORT`); 0 picks a free one. @default 0 */
  port: number;
  /** Address other processes reach this one at (`BATCH_ADVERTISE_HOST`), written in its member record. @default `host`, or the hostname when `host` is a wildcard */
  advertiseHost: string;
  /** TCP port of the service-to-service calls (`BATCH_RPC_PORT`; services that serve them); 0 picks a free one. @default 0 */
  rpcPort: number;
  /** Process lease TTL, in seconds (`BATCH_LEASE_TTL`). @default 5 */
  leaseTtlSeconds: number;
  /** Identity of this process (`BATCH_INSTANCE_ID`). @default hostname-pid-random */
  instanceId: string;
  /** Log level (`BATCH_LOG_LEVEL`). @default "info" */
  logLevel: string;
  /** TLS to etcd: PEM files of the CA (`BATCH_ETCD_CA`), this client's certificate (`BATCH_ETCD_CERT`) and key (`BATCH_ETCD_KEY`). @default none (plain) */
  etcdTls?: { caFile: string; certFile?: string; keyFile?: string };
}

/** Host values that listen on every interface: other processes cannot reach them there. */
const WILDCARD_HOSTS = ['0.0.0.0', '::', ''];

/** The variables every service reads (docs/configuration.md, "Every service"). */
export const SERVICE_ENV = z.object({
  BATCH_ETCD_ENDPOINTS: envList({ default: ['http://127.0.0.1:2379'], doc: 'etcd client URLs.' }),
  BATCH_ETCD_PREFIX: envString({ default: '/batch/', doc: 'Root prefix of every key this cluster writes in etcd.' }),
  BATCH_ETCD_CA: envString({ type: 'path', doc: 'PEM file of the CA of etcd: set, the etcd client uses TLS.' }),
  BATCH_ETCD_CERT: envString({ type: 'path', doc: "PEM file of this client's certificate to etcd (with `BATCH_ETCD_CA`)." }),
  BATCH_ETCD_KEY: envString({ type: 'path', doc: "PEM file of this client's private key to etcd (with `BATCH_ETCD_CA`)." }),
  BATCH_HOST: envString({ default: '127.0.0.1', doc: 'HTTP listen address.' }),
  BATCH_PORT: envNumber({ default: 0, min: 0, doc: 'HTTP port; 0 picks a free one.' }),
  BATCH_ADVERTISE_HOST: envString({
    defaultText: '`BATCH_HOST`, or the host name when that is a wildcard',
    doc: 'Address other processes reach this one at, written in its member record.',
  }),
  BATCH_RPC_PORT: envNumber({ default: 0, min: 0, doc: 'TCP port of service-to-service calls (services that serve them); 0 picks a free one.' }),
  BATCH_LEASE_TTL: envNumber({ default: 5, min: 1, unit: 'seconds', doc: "TTL of the process's etcd lease: how soon others see it gone." }),
  BATCH_INSTANCE_ID: envString({ defaultText: 'host-pid-random', doc: 'Identity of this process.' }),
  BATCH_LOG_LEVEL: envEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info', doc: 'Log level.' }),
  BATCH_SERVICE_TOKEN_FILE: envString({
    type: 'path',
    doc: "File holding the cluster's shared service token (preferred over `BATCH_SERVICE_TOKEN`); admission, quota (it signs workflow steps' inputs tokens), scheduler and executor refuse to start without a token.",
  }),
  BATCH_SERVICE_TOKEN: envString({ doc: "The cluster's shared service token (at least 32 printable characters), when `BATCH_SERVICE_TOKEN_FILE` is unset." }),
});

/** The settings from the environment, defaults for what is unset; a bad value throws `ConfigError` naming the variable. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  const e = parseEnv(SERVICE_ENV, env);
  return {
    etcdEndpoints: e.BATCH_ETCD_ENDPOINTS,
    etcdPrefix: e.BATCH_ETCD_PREFIX,
    host: e.BATCH_HOST,
    port: e.BATCH_PORT,
    rpcPort: e.BATCH_RPC_PORT,
    advertiseHost: e.BATCH_ADVERTISE_HOST ?? (WILDCARD_HOSTS.includes(e.BATCH_HOST) ? hostname() : e.BATCH_HOST),
    leaseTtlSeconds: e.BATCH_LEASE_TTL,
    instanceId: e.BATCH_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    logLevel: e.BATCH_LOG_LEVEL,
    ...(e.BATCH_ETCD_CA
      ? {
          etcdTls: {
            caFile: e.BATCH_ETCD_CA,
            ...(e.BATCH_ETCD_CERT ? { certFile: e.BATCH_ETCD_CERT } : {}),
            ...(e.BATCH_ETCD_KEY ? { keyFile: e.BATCH_ETCD_KEY } : {}),
          },
        }
      : {}),
  };
}

/** The variable of the services that read or write the history store (admission, quota). */
export const HISTORY_ENV = z.object({
  BATCH_HISTORY_URL: envString({
    type: 'postgres URL',
    blankIsUnset: true,
    doc: 'PostgreSQL connection URL of the history store (finished jobs, their tasks and results). Unset: no history; finished jobs stay in etcd until retention deletes them.',
  }),
});

/** `{ historyUrl }` from `BATCH_HISTORY_URL`, or nothing when it is unset. */
export function historyUrlFromEnv(env: NodeJS.ProcessEnv = process.env): { historyUrl?: string } {
  const e = parseEnv(HISTORY_ENV, env);
  return e.BATCH_HISTORY_URL ? { historyUrl: e.BATCH_HISTORY_URL } : {};
}

/** Where blobs (task logs) go: the variables of the services that write or read them (executor, admission). */
export const BLOB_ENV = z.object({
  BATCH_BLOB_STORE: envEnum(['auto', 'postgres', 's3', 'none'], {
    default: 'auto',
    doc: "Where ended attempts' logs are kept after their node: `postgres` (the history database, `BATCH_HISTORY_URL`), `s3` (an S3-compatible bucket, `BATCH_S3_*`; credentials from the AWS SDK's default chain, e.g. `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or the pod's role), `none` (on their node only); `auto`: `postgres` when `BATCH_HISTORY_URL` is set, else `none`.",
  }),
  BATCH_S3_BUCKET: envString({ blankIsUnset: true, doc: 'With `BATCH_BLOB_STORE=s3`: the bucket (it must exist).' }),
  BATCH_S3_PREFIX: envString({ default: '', doc: 'With `BATCH_BLOB_STORE=s3`: prefix of every object key BatchAPI writes, e.g. `batchapi/prod/`.' }),
  BATCH_S3_ENDPOINT: envString({
    type: 'URL',
    blankIsUnset: true,
    defaultText: "AWS's endpoint of the region",
    doc: 'With `BATCH_BLOB_STORE=s3`: URL of a non-AWS S3-compatible server (path-style requests are then used).',
  }),
  BATCH_S3_REGION: envString({ default: 'us-east-1', doc: "With `BATCH_BLOB_STORE=s3`: the bucket's region." }),
});

/** Blob settings (`BlobSettings` of `@batchapi/blobs`) from `BLOB_ENV` and `BATCH_HISTORY_URL`; a bad combination throws `ConfigError` naming the variable. */
export function blobSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): BlobSettings {
  const e = parseEnv(BLOB_ENV, env);
  const { historyUrl } = historyUrlFromEnv(env);
  const kind = e.BATCH_BLOB_STORE === 'auto' ? (historyUrl ? 'postgres' : 'none') : e.BATCH_BLOB_STORE;
  if (kind === 'postgres') {
    if (!historyUrl) throw new ConfigError(['BATCH_BLOB_STORE=postgres needs BATCH_HISTORY_URL (the history database holds the blobs)']);
    return { kind, historyUrl };
  }
  if (kind === 's3') {
    if (!e.BATCH_S3_BUCKET) throw new ConfigError(['BATCH_S3_BUCKET must be set with BATCH_BLOB_STORE=s3']);
    return {
      kind,
      bucket: e.BATCH_S3_BUCKET,
      prefix: e.BATCH_S3_PREFIX,
      region: e.BATCH_S3_REGION,
      ...(e.BATCH_S3_ENDPOINT ? { endpoint: e.BATCH_S3_ENDPOINT } : {}),
    };
  }
  return { kind: 'none' };
}

/** Nest provider token of the blob store (`BlobStore` of `@batchapi/blobs`), provided only when one is configured. */
export const BLOBS = Symbol('BlobStore');

/** Nest provider token of the history store (`HistoryStore` of `@batchapi/history`), provided only when `BATCH_HISTORY_URL` is set. */
export const HISTORY = Symbol('HistoryStore');
