import { requireServiceToken, serviceMain } from '@batchapi/runtime';
import { startExecutor } from './executor';
import { startSimulatedFleet } from './simulated-fleet';

// Internal calls carry the cluster's service credential; without one this process could serve or make none.
requireServiceToken('executor');

// BATCH_SIMULATE_NODES=N runs N simulated nodes instead of one real one (see simulated-fleet.ts).
const simulated = Number(process.env.BATCH_SIMULATE_NODES ?? 0);
if (simulated > 0) {
  void serviceMain((onLeaseLost) =>
    startSimulatedFleet(
      { nodes: simulated, prefix: process.env.BATCH_NODE_NAME ?? 'sim', taskMs: Number(process.env.BATCH_SIM_TASK_MS ?? 1000) },
      undefined,
      onLeaseLost,
    ),
  );
} else {
  // On self-fencing the process exits (its tasks are already killed); the supervisor restarts it.
  void serviceMain((onLeaseLost) => startExecutor({ onFenced: onLeaseLost }));
}
