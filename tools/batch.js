#!/usr/bin/env node
// `npm run -s batch -- <args>`: builds what is stale (quietly unless the build fails;
// BATCH_SKIP_BUILD=1 skips it), then runs the CLI (apps/cli/dist/main.js) with the same
// stdio, passes signals on, and exits as the CLI did.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const os = require('node:os');

const root = path.join(__dirname, '..');

if (process.env.BATCH_SKIP_BUILD !== '1') {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    process.stderr.write('batch: TypeScript is not installed: run npm install first.\n');
    process.exit(1);
  }
  // tsc -b only rebuilds projects whose sources changed: a no-op build takes well under a second.
  const b = spawnSync(process.execPath, [tsc, '-b', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  if (b.status !== 0) {
    process.stderr.write('batch: the build failed:\n');
    process.stderr.write(b.stdout || '');
    process.stderr.write(b.stderr || (b.error ? String(b.error) : ''));
    process.exit(b.status || 1);
  }
}

const child = spawn(process.execPath, [path.join(root, 'apps/cli/dist/main.js'), ...process.argv.slice(2)], { stdio: 'inherit' });

// Signals sent to this wrapper go on to the CLI. A Ctrl-C in a terminal reaches both (same
// process group): the CLI treats a repeat within a moment as the same request.
const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const pass = (signal) => {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
};
for (const s of forwarded) process.on(s, pass);

child.on('error', (err) => {
  process.stderr.write(`batch: could not run the CLI: ${err.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    // Die the same way, so a caller sees what happened to the CLI.
    for (const s of forwarded) process.off(s, pass);
    process.kill(process.pid, signal);
    setTimeout(() => process.exit(128 + (os.constants.signals[signal] || 0)), 100);
    return;
  }
  process.exit(code ?? 1);
});
