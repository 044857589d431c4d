#!/usr/bin/env node
/**
 * `npm run lint`: the project graph (`nx show projects`, which checks the module boundaries'
 * inputs parse), then ESLint beside Prettier's check followed by the type check of every file
 * (`tsconfig.typecheck.json`, tests included). ESLint takes about as long as the other two
 * together, so on two cores the two lanes halve the wall time. Prettier and the type check keep
 * what they learned under node_modules/.cache/batchapi/ (Prettier's cache of files checked, by
 * content; tsc's incremental build info, by file hash): a run after a small change checks what
 * changed (here 22 → 3 s and 28 → 8 s; `npm run lint` 81 → ~50 s), a clean checkout all of it.
 * ESLint keeps none: its type-aware rules can fail in a file that did not change. Each tool's
 * output is printed when it ends; the exit status is non-zero when any failed.
 */
'use strict';
const { spawn } = require('node:child_process');

const { join } = require('node:path');

const bin = (name) => join(__dirname, '..', 'node_modules', '.bin', name);

/** Runs one tool; resolves with 0 or 1 after printing its output (stderr only with `quiet`) with a header. */
function run(name, file, args, quiet = false) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += quiet ? '' : d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code, signal) => {
      const status = code ?? signal;
      if (out.trim() || status !== 0) process.stderr.write(`lint: ${name}: exit ${status} in ${Math.round((Date.now() - started) / 1000)} s\n${out}`);
      resolve(code === 0 ? 0 : 1);
    });
  });
}

/** Where Prettier and tsc keep what they learned between runs (see the header). */
const CACHE = join(__dirname, '..', 'node_modules', '.cache', 'batchapi');

const PRETTIER_GLOBS = ['apps/**/*.{ts,js}', 'libs/**/*.{ts,js}', 'tools/**/*.{ts,js}', '*.{js,mjs}'];

async function main() {
  if ((await run('nx show projects', bin('nx'), ['show', 'projects'], true)) !== 0) process.exit(1);
  const lanes = await Promise.all([
    run('eslint', bin('eslint'), ['.']),
    (async () =>
      (await run('prettier', bin('prettier'), ['--check', '--cache', '--cache-location', join(CACHE, 'prettier'), '--log-level', 'warn', ...PRETTIER_GLOBS])) |
      (await run('tsc', bin('tsc'), ['-p', 'tsconfig.typecheck.json', '--incremental', '--tsBuildInfoFile', join(CACHE, 'typecheck.tsbuildinfo')])))(),
  ]);
  process.exit(lanes.some((c) => c !== 0) ? 1 : 0);
}

void main();
