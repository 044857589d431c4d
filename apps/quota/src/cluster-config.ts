/** Seeds tenants and queues from the cluster config file; without one, a default tenant and queue. */
import { readFileSync } from 'node:fs';
import { type ClusterConfig, ClusterConfigSchema, parseWith, type Queue, type Tenant, toQueue, toTenant } from '@batchapi/api';
import { CasConflictError, type EtcdStore, putQueue, putTenant } from '@batchapi/store';

/** What a cluster has when nobody configured it: tenant `default` with queue `default`, no limits. */
export const DEFAULT_CLUSTER: ClusterConfig = { tenants: [{ name: 'default', weight: 1 }], queues: [{ name: 'default', tenant: 'default' }] };

export function loadClusterConfig(path?: string): ClusterConfig {
  if (!path) return DEFAULT_CLUSTER;
  return parseWith(ClusterConfigSchema, JSON.parse(readFileSync(path, 'utf8')), path);
}

/**
 * Writes each tenant and queue whose stored value differs, each by compare-and-swap. One that
 * kept changing under another writer (an operator's PUT) is left as that writer made it.
 */
export async function seedCluster(store: EtcdStore, config: ClusterConfig): Promise<void> {
  const tenants: Tenant[] = config.tenants.map((t) => toTenant(t.name, t));
  const queues: Queue[] = config.queues.map(({ name, ...q }, i) => toQueue(name, q, `queues.${i}`));
  const writes = [...tenants.map((t) => () => putTenant(store, t)), ...queues.map((q) => () => putQueue(store, q))];
  for (const write of writes) {
    await write().catch((err: unknown) => {
      if (!(err instanceof CasConflictError)) throw err;
    });
  }
}
