#!/usr/bin/env node
// `npm run -s batch -- <args>`: builds what is stale (quietly; BATCH_SKIP_BUILD=1 skips it), then runs the CLI.
const { spawnSync, spawn } = require('node:child_process');
const path = require('node:path');
const root = path.join(__dirname, '..');
if (process.env.BATCH_SKIP_BUILD !== '1') {
  const b = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  if (b.status !== 0) {
    process.stderr.write('batch: the build failed:\n');
    process.stderr.write(b.stdout);
    process.stderr.write(b.stderr);
    process.exit(b.status ?? 1);
  }
}
const child = spawn(process.execPath, [path.join(root, 'apps/cli/dist/main.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
// Ctrl-C reaches the CLI through the terminal's process group; a TERM sent to this wrapper is passed on.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
