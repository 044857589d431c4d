import { serviceMain } from '@batchapi/runtime';
import { loadClusterConfig } from './cluster-config';
import { startQuota } from './quota';

// No `onLeaseLost`: a quota replica holds no work under its lease, so after a lease loss the
// runtime takes a new one and the elected roles (workflows, retention) campaign again on it
// (`serveElectedRole`), while admitting goes on.
void serviceMain(() => startQuota({ cluster: loadClusterConfig(process.env.BATCH_CLUSTER_CONFIG) }));
