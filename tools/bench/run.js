#!/usr/bin/env node
// `npm run -s bench -- NAME [options]`: builds what it needs (quietly), then runs the benchmark.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const root = path.join(__dirname, '../..');
if (process.env.BATCH_SKIP_BUILD !== '1') {
  const b = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  if (b.status !== 0) {
    process.stderr.write(b.stdout);
    process.stderr.write(b.stderr);
    process.exit(b.status ?? 1);
  }
}
require('./dist/main.js')
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (err) => {
      console.error(err?.stack ?? err);
      process.exit(1);
    },
  );
