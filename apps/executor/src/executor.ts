/** Wires the executor service: the node agent and its internal log endpoint. */
import { CLOCK, type Clock, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import { EXECUTOR_CONFIG, ExecutorAgent } from './agent';
import { type ExecutorConfig, executorConfigFromEnv } from './config';
import { LogsController } from './logs.controller';

export interface ExecutorOptions {
  /** @default from the environment */
  executor?: Partial<ExecutorConfig>;
  config?: Partial<ServiceConfig>;
  /** Called when the executor fences itself (lease lost); the process main exits then. @default none */
  onFenced?: () => void;
  /** The clocks the agent reads (tests pass a fake one). @default systemClock */
  clock?: Clock;
}

export interface RunningExecutor extends RunningService {
  agent: ExecutorAgent;
}

export async function startExecutor(opts: ExecutorOptions = {}): Promise<RunningExecutor> {
  const executor: ExecutorConfig = { ...executorConfigFromEnv(), ...opts.executor };
  let agent: ExecutorAgent | undefined;
  const svc = await runService({
    name: 'executor',
    config: opts.config,
    // The executor never takes a new lease under running work: it fences itself instead.
    onLeaseLost: () => agent?.selfFence('process lease lost'),
    controllers: [LogsController],
    providers: [ExecutorAgent, { provide: EXECUTOR_CONFIG, useValue: executor }, { provide: CLOCK, useValue: opts.clock ?? systemClock }],
  });
  const a = svc.app.get(ExecutorAgent);
  agent = a;
  if (opts.onFenced) a.onFenced = opts.onFenced;
  await a.register(svc.url);
  return Object.assign(svc, { agent: a });
}
