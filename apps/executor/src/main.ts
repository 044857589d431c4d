import { serviceMain } from '@batchapi/runtime';
import { startExecutor } from './executor';

// On self-fencing the process exits (its tasks are already killed); the supervisor restarts it.
void serviceMain((onLeaseLost) => startExecutor({ onFenced: onLeaseLost }));
