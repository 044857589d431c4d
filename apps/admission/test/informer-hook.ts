import type { EtcdStore, InformerHandlers } from '@batchapi/store';

/** What to do to the next informer a store starts over one prefix. */
export interface InformerHook {
  /** Runs before the informer starts (its listing comes after). */
  before?: () => Promise<void>;
  /** The handlers it is given instead of the stream's own (which the wrapper calls when it chooses). */
  wrap?: (handlers: InformerHandlers<unknown>) => InformerHandlers<unknown>;
}

/**
 * Wraps `store.inform` (an admission replica's store) so that a test can choose when the next
 * informer over a prefix starts, or when its listing and events reach the stream — the data stays
 * etcd's own. Returns the setter of the hook; each hook applies to one informer, then is cleared.
 */
export function hookInformers(store: EtcdStore): (prefix: string, hook: InformerHook) => void {
  const hooks = new Map<string, InformerHook>();
  const inform = store.inform.bind(store);
  store.inform = (async (prefix: string, handlers: InformerHandlers<unknown>, options?: Parameters<typeof inform>[2]) => {
    const hook = hooks.get(prefix);
    hooks.delete(prefix);
    await hook?.before?.();
    return inform(prefix, hook?.wrap ? hook.wrap(handlers) : handlers, options);
  }) as typeof store.inform;
  return (prefix, hook) => hooks.set(prefix, hook);
}
