import { serviceMain } from '@batchapi/runtime';
import { startScheduler } from './scheduler';

void serviceMain((onLeaseLost) => startScheduler({ onLeaseLost }));
