/**
 * A CPU profile of one service process for the nemesis (`NEMESIS_PROFILE=<service name prefix>`),
 * preloaded with `NODE_OPTIONS=--require` (Node refuses `--cpu-prof` there): starts V8's
 * profiler at once and writes `<BATCH_CPU_PROFILE_DIR>/<pid>.cpuprofile` when the process exits
 * (a self-fenced service exits with 75), for Chrome DevTools or `speedscope`.
 */
'use strict';
const inspector = require('node:inspector');
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const dir = process.env.BATCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  // The in-process session answers synchronously, so the profile is written before the exit.
  process.on('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
