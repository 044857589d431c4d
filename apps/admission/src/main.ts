import { configOrExit, requireServiceToken, serviceMain } from '@batchapi/runtime';
import { startAdmission } from './admission';
import { admissionConfigFromEnv } from './config';

// Internal calls carry the cluster's service credential; without one this process could serve or make none.
requireServiceToken('admission');

const tokens = configOrExit(() => admissionConfigFromEnv()).tokensFile;
if (!tokens) {
  console.error('admission: set BATCH_TOKENS_FILE to the tokens file (see docs/architecture.md)');
  process.exit(2);
}
void serviceMain(() => startAdmission({ tokens }));
