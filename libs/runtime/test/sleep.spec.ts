import { getEventListeners } from 'node:events';
import { sleepUnlessAborted } from '@batchapi/runtime';

describe('sleepUnlessAborted', () => {
  it('leaves no listener on the signal after the time is up (a loop of sleeps does not pile them up)', async () => {
    const abort = new AbortController();
    for (let i = 0; i < 20; i++) await sleepUnlessAborted(1, abort.signal);
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
  });

  it('resolves on abort, not when its time is up (ten minutes here: past the test timeout)', async () => {
    const abort = new AbortController();
    const slept = sleepUnlessAborted(600_000, abort.signal);
    abort.abort();
    await expect(slept).resolves.toBeUndefined();
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
  });
});
