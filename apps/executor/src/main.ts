import { configOrExit, requireServiceToken, serviceMain } from '@batchapi/runtime';
import { simulationConfigFromEnv } from './config';
import { startExecutor } from './executor';
import { startSimulatedFleet } from './simulated-fleet';

// Internal calls carry the cluster's service credential; without one this process could serve or make none.
requireServiceToken('executor');

// BATCH_SIMULATE_NODES=N runs N simulated nodes instead of one real one (see simulated-fleet.ts).
const simulation = configOrExit(() => simulationConfigFromEnv());
if (simulation.nodes > 0) {
  void serviceMain((onLeaseLost) => startSimulatedFleet(simulation, undefined, onLeaseLost));
} else {
  // On self-fencing the process exits (its tasks are already killed); the supervisor restarts it.
  void serviceMain((onLeaseLost) => startExecutor({ onFenced: onLeaseLost }));
}
