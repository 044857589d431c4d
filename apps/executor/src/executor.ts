/** Wires the executor service: the node agent and its internal log endpoint. */
import { type BlobSettings, openBlobStore } from '@batchapi/blobs';
import { BLOBS, blobSettingsFromEnv, CLOCK, type Clock, runService, type RunningService, type ServiceConfig, systemClock } from '@batchapi/runtime';
import { EXECUTOR_CONFIG, ExecutorAgent } from './agent';
import { type ExecutorConfig, executorConfigFromEnv } from './config';
import { loadKubernetesClient } from './kubernetes';
import { LogsController } from './logs.controller';

export interface ExecutorOptions {
  /** @default from the environment */
  executor?: Partial<ExecutorConfig>;
  config?: Partial<ServiceConfig>;
  /** Called when the executor fences itself (lease lost); the process main exits then. @default none */
  onFenced?: () => void;
  /** The clocks the agent reads (tests pass a fake one). @default systemClock */
  clock?: Clock;
  /** Where ended attempts' logs are kept past the node. @default from `BATCH_BLOB_STORE` (the history database when `BATCH_HISTORY_URL` is set) */
  blobs?: BlobSettings;
}

export interface RunningExecutor extends RunningService {
  agent: ExecutorAgent;
  /** The graceful stop's first half (`ExecutorAgent.drain`); `serviceMain` calls it on SIGTERM (not on SIGINT), before `close`. */
  drain(): Promise<void>;
}

export async function startExecutor(opts: ExecutorOptions = {}): Promise<RunningExecutor> {
  const executor: ExecutorConfig = { ...executorConfigFromEnv(), ...opts.executor };
  // Before the lease is granted: the client's (synchronous) load must not eat into its TTL.
  if (executor.backend === 'kubernetes') loadKubernetesClient();
  const blobs = openBlobStore(opts.blobs ?? blobSettingsFromEnv());
  let agent: ExecutorAgent | undefined;
  const svc = await runService({
    name: 'executor',
    config: opts.config,
    // The executor never takes a new lease under running work: it fences itself instead.
    onLeaseLost: () => agent?.selfFence('process lease lost'),
    controllers: [LogsController],
    providers: [
      ExecutorAgent,
      { provide: EXECUTOR_CONFIG, useValue: executor },
      { provide: CLOCK, useValue: opts.clock ?? systemClock },
      ...(blobs ? [{ provide: BLOBS, useValue: blobs }] : []),
    ],
  });
  const a = svc.app.get(ExecutorAgent);
  agent = a;
  if (opts.onFenced) a.onFenced = opts.onFenced;
  await a.register(svc.url);
  const close = svc.close.bind(svc);
  // the blob store's connections end after the agent's last uploads
  return Object.assign(svc, { agent: a, drain: () => a.drain().then(() => undefined), close: () => close().finally(() => blobs?.close()) });
}
