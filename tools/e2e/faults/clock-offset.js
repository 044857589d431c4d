/**
 * A faketime-style clock offset for one service process, preloaded by the nemesis with
 * `NODE_OPTIONS=--require <this file>`: `Date.now()` returns the real time plus the number of
 * milliseconds in the file `BATCH_FAKE_CLOCK_FILE` (absent or empty: 0). The nemesis writes
 * the file and sends SIGUSR2 to make the process read it again, so a service's wall clock
 * jumps forward or back while the rest of the cluster keeps real time. Monotonic clocks
 * (`performance.now`, timers) do not jump, as on a real machine whose wall clock is stepped.
 * Plain JavaScript: it runs before the service's own code, from dist.
 */
'use strict';
const { readFileSync } = require('node:fs');

const file = process.env.BATCH_FAKE_CLOCK_FILE;
if (file) {
  const realNow = Date.now.bind(Date);
  let offset = 0;
  const read = () => {
    try {
      const n = Number(readFileSync(file, 'utf8').trim() || 0);
      offset = Number.isFinite(n) ? n : 0;
    } catch {
      offset = 0;
    }
  };
  read();
  Date.now = () => realNow() + offset;
  process.on('SIGUSR2', read);
}
