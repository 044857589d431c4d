#!/usr/bin/env node
/**
 * `npm run -s test:faults [-- args]`: builds, then runs the fault scenarios (as before: `FAULTS=text`
 * filters them, other args go to jest), or with `--nemesis` the randomized nemesis:
 *
 *   npm run -s test:faults -- --nemesis --minutes 10 [--seed N] [--rate 200]
 *
 * The seed is printed first (a random one when none is given); the same seed replays the same
 * load and fault schedule. Minutes, seed and rate reach the spec as NEMESIS_* variables.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const { randomInt } = require('node:crypto');
const { join } = require('node:path');

const root = join(__dirname, '../../..');
const args = process.argv.slice(2);
const opts = { nemesis: false };
const rest = [];
for (let i = 0; i < args.length; i++) {
  const m = /^--(nemesis|minutes|seed|rate)(?:=(.*))?$/.exec(args[i]);
  if (!m) {
    rest.push(args[i]);
    continue;
  }
  if (m[1] === 'nemesis') {
    opts.nemesis = true;
    continue;
  }
  const value = m[2] ?? args[++i];
  if (value === undefined || !/^\d+(\.\d+)?$/.test(value)) {
    console.error(`test:faults: --${m[1]} needs a number, e.g. --${m[1]} ${m[1] === 'rate' ? 200 : 10}`);
    process.exit(2);
  }
  opts[m[1]] = value;
}
if (!opts.nemesis && (opts.minutes || opts.seed || opts.rate)) {
  console.error('test:faults: --minutes, --seed and --rate go with --nemesis');
  process.exit(2);
}

const env = { ...process.env };
if (opts.nemesis) {
  const seed = opts.seed ?? String(randomInt(1, 2 ** 31));
  Object.assign(env, { NEMESIS_SEED: seed, NEMESIS_MINUTES: opts.minutes ?? '10', NEMESIS_RATE: opts.rate ?? '200' });
  console.log(`nemesis seed ${seed} (replay: npm run -s test:faults -- --nemesis --minutes ${env.NEMESIS_MINUTES} --rate ${env.NEMESIS_RATE} --seed ${seed})`);
}

const run = (cmd, argv) => spawnSync(cmd, argv, { cwd: root, env, stdio: 'inherit' }).status ?? 1;
const built = run('npm', ['run', '-s', 'build']);
if (built !== 0) process.exit(built);
const config = opts.nemesis ? 'tools/e2e/jest.nemesis.config.js' : 'tools/e2e/jest.faults.config.js';
process.exit(run(process.execPath, [require.resolve('jest/bin/jest', { paths: [root] }), '-c', config, '--runInBand', '--forceExit', ...rest]));
