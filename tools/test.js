#!/usr/bin/env node
/**
 * `npm test`'s jest part, in two phases (after the build and the lint):
 *
 * 1. The fault suites that judge the cluster under load and time — the nemesis, the fast fault
 *    scenarios, the lease under member faults (`FAULT_SUITES`) — one at a time, alone on the box,
 *    in that order (`tools/jest-sequencer.js`). Their verdicts are about the cluster; a suite
 *    beside them would starve their load generators and samplers and judge the box instead.
 * 2. Every other suite on `BATCH_TEST_WORKERS` workers (default 2): they start their own etcd,
 *    PostgreSQL and services on free loopback ports and wait on them more than they compute, so
 *    two at a time nearly halve the wall time (one worker: 26 minutes for the whole suite).
 *
 * Both phases always run; the exit status is non-zero when either failed. The last line is
 * jest's `Tests:` line summed over both, which `.ci/run` reads. Arguments go to both phases
 * (e.g. `-- --listTests`).
 */
'use strict';
const { spawn } = require('node:child_process');
const { FAULT_SUITES } = require('./jest-sequencer');

const args = process.argv.slice(2);
const workers = process.env.BATCH_TEST_WORKERS ?? '2';
const jest = require.resolve('jest/bin/jest');
/** A path's regular expression for jest (its dots literal). */
const pattern = (p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Runs jest, passing its output on as it comes, and counts its `Tests:` line. */
function phase(name, jestArgs) {
  process.stderr.write(`\ntest: ${name}\n`);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [jest, '--ci', ...jestArgs, ...args], { stdio: ['inherit', 'inherit', 'pipe'] });
    let tail = '';
    child.stderr.on('data', (chunk) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-64 * 1024);
    });
    child.on('close', (code, signal) => {
      const line = [...tail.matchAll(/^Tests:.*$/gm)].pop()?.[0] ?? '';
      const count = (what) => Number(new RegExp(`(\\d+) ${what}`).exec(line)?.[1] ?? 0);
      process.stderr.write(`test: ${name}: exit ${code ?? signal} in ${Math.round((Date.now() - started) / 1000)} s\n`);
      resolve({ ok: code === 0, failed: count('failed'), skipped: count('skipped'), passed: count('passed'), total: count('total') });
    });
  });
}

async function main() {
  // A fresh worker process (not --runInBand, jest's own process) for the fault suites.
  const faults = await phase('fault suites, alone (1 worker)', ['--maxWorkers', '1', '--testPathPatterns', ...FAULT_SUITES.map(pattern)]);
  const rest = await phase(`every other suite (${workers} workers)`, ['--maxWorkers', workers, '--testPathIgnorePatterns', ...FAULT_SUITES.map(pattern)]);
  const sum = (k) => faults[k] + rest[k];
  const parts = [sum('failed') && `${sum('failed')} failed`, sum('skipped') && `${sum('skipped')} skipped`, `${sum('passed')} passed`, `${sum('total')} total`];
  process.stderr.write(`\nTests:       ${parts.filter(Boolean).join(', ')}\n`);
  process.exit(faults.ok && rest.ok ? 0 : 1);
}

void main();
