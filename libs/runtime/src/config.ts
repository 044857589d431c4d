/** Settings every service reads from its environment. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';

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
  /** Process lease TTL in seconds (`BATCH_LEASE_TTL`). @default 5 */
  leaseTtlSeconds: number;
  /** Identity of this process (`BATCH_INSTANCE_ID`). @default hostname-pid-random */
  instanceId: string;
  /** Log level (`BATCH_LOG_LEVEL`). @default "info" */
  logLevel: string;
  /** TLS to etcd: PEM files of the CA (`BATCH_ETCD_CA`), this client's certificate (`BATCH_ETCD_CERT`) and key (`BATCH_ETCD_KEY`). @default none (plain) */
  etcdTls?: { caFile: string; certFile?: string; keyFile?: string };
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  return {
    etcdEndpoints: (env.BATCH_ETCD_ENDPOINTS ?? 'http://127.0.0.1:2379')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    etcdPrefix: env.BATCH_ETCD_PREFIX ?? '/batch/',
    host: env.BATCH_HOST ?? '127.0.0.1',
    port: Number(env.BATCH_PORT ?? 0),
    rpcPort: Number(env.BATCH_RPC_PORT ?? 0),
    advertiseHost: env.BATCH_ADVERTISE_HOST ?? (['0.0.0.0', '::', ''].includes(env.BATCH_HOST ?? '127.0.0.1') ? hostname() : (env.BATCH_HOST ?? '127.0.0.1')),
    leaseTtlSeconds: Number(env.BATCH_LEASE_TTL ?? 5),
    instanceId: env.BATCH_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    logLevel: env.BATCH_LOG_LEVEL ?? 'info',
    ...(env.BATCH_ETCD_CA
      ? {
          etcdTls: {
            caFile: env.BATCH_ETCD_CA,
            ...(env.BATCH_ETCD_CERT ? { certFile: env.BATCH_ETCD_CERT } : {}),
            ...(env.BATCH_ETCD_KEY ? { keyFile: env.BATCH_ETCD_KEY } : {}),
          },
        }
      : {}),
  };
}
