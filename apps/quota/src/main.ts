import { configOrExit, requireServiceToken, serviceMain } from '@batchapi/runtime';
import { loadClusterConfig } from './cluster-config';
import { quotaConfigFromEnv } from './config';
import { startQuota } from './quota';

// No `onLeaseLost`: a quota replica holds no work under its lease, so after a lease loss the
// runtime takes a new one and the elected roles (workflows, retention) campaign again on it
// (`serveElectedRole`), while admitting goes on.
// The service credential signs the read-only inputs tokens of workflow steps, which admission checks.
requireServiceToken('quota');
const { clusterConfigFile } = configOrExit(() => quotaConfigFromEnv());
void serviceMain(() => startQuota({ cluster: loadClusterConfig(clusterConfigFile) }));
