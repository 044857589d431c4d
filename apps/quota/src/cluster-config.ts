/** Seeds tenants and queues from the cluster config file; without one, a default tenant and queue. */
import { readFileSync } from 'node:fs';
import { type ClusterConfig, ClusterConfigSchema, parseWith, type Queue, type Tenant, toQueue, toTenant } from '@batchapi/api';
import type { EtcdStore } from '@batchapi/store';

/** What a cluster has when nobody configured it: tenant `default` with queue `default`, no limits. */
export const DEFAULT_CLUSTER: ClusterConfig = { tenants: [{ name: 'default', weight: 1 }], queues: [{ name: 'default', tenant: 'default' }] };

export function loadClusterConfig(path?: string): ClusterConfig {
  if (!path) return DEFAULT_CLUSTER;
  return parseWith(ClusterConfigSchema, JSON.parse(readFileSync(path, 'utf8')), path);
}

/** Writes each tenant and queue whose stored value differs, each by compare-and-swap. */
export async function seedCluster(store: EtcdStore, config: ClusterConfig): Promise<void> {
  const tenants: Tenant[] = config.tenants.map((t) => toTenant(t.name, t));
  const queues: Queue[] = config.queues.map(({ name, ...q }, i) => toQueue(name, q, `queues.${i}`));
  const entries: Array<[string, unknown]> = [
    ...tenants.map((t) => [store.keys.tenant(t.name), t] as [string, unknown]),
    ...queues.map((q) => [store.keys.queue(q.name), q] as [string, unknown]),
  ];
  for (const [key, value] of entries) {
    for (let attempt = 0; attempt < 8; attempt++) {
      const cur = await store.get(key);
      if (cur && JSON.stringify(cur.value) === JSON.stringify(value)) break;
      const res = await store.txn([cur ? { key, modRevision: cur.modRevision } : { key, absent: true }], [{ put: key, value }]);
      if (res.succeeded) break;
    }
  }
}
