import { requireServiceToken, serviceMain } from '@batchapi/runtime';
import { startScheduler } from './scheduler';

// Internal calls carry the cluster's service credential; without one this process could serve or make none.
requireServiceToken('scheduler');

void serviceMain((onLeaseLost) => startScheduler({ onLeaseLost }));
