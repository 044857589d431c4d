/** Settings every service reads from its environment: their schema (`SERVICE_ENV`) and the parsed `ServiceConfig`. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { envEnum, envList, envNumber, envString, parseEnv } from './env';

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
    doc: "File holding the cluster's shared service token (preferred over `BATCH_SERVICE_TOKEN`); admission, scheduler and executor refuse to start without a token.",
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

/** Nest provider token of the history store (`HistoryStore` of `@batchapi/history`), provided only when `BATCH_HISTORY_URL` is set. */
export const HISTORY = Symbol('HistoryStore');
