import { serviceMain } from '@batchapi/runtime';
import { loadClusterConfig } from './cluster-config';
import { startQuota } from './quota';

void serviceMain(() => startQuota({ cluster: loadClusterConfig(process.env.BATCH_CLUSTER_CONFIG) }));
