import { requireServiceToken, serviceMain } from '@batchapi/runtime';
import { startAdmission } from './admission';

// Internal calls carry the cluster's service credential; without one this process could serve or make none.
requireServiceToken('admission');

const tokens = process.env.BATCH_TOKENS_FILE;
if (!tokens) {
  console.error('admission: set BATCH_TOKENS_FILE to the tokens file (see docs/architecture.md)');
  process.exit(2);
}
void serviceMain(() => startAdmission({ tokens, bodyLimit: process.env.BATCH_MAX_BODY_BYTES ? Number(process.env.BATCH_MAX_BODY_BYTES) : undefined }));
