// Bundles the `batch` command into dist/bundle/ (esbuild), the directory `npm pack` ships and
// `npm install -g ./apps/cli` installs: batch.js (the CLI, executable) and the four services
// `batch dev` starts — admission.js, quota.js, scheduler.js, executor.js, and the executor's
// watchdog.js — beside it, so an installed copy needs neither the checkout nor a registry.
// Run by `npm run build` after tsc and the console's build: it bundles tsc's output (dist/),
// whose decorator metadata NestJS needs and esbuild cannot emit from the sources.
//
// Files read at run time relative to their module are moved next to the bundle, and the
// expressions naming them rewritten (RELOCATED); the build fails when one is not found, so a
// change of those sources cannot silently break the bundle.
import { chmodSync, cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const out = join(here, 'dist/bundle');
const require = createRequire(import.meta.url);

/** What each bundle starts from (tsc's output). */
const ENTRIES = {
  batch: join(here, 'dist/main.js'),
  admission: join(root, 'apps/admission/dist/main.js'),
  quota: join(root, 'apps/quota/dist/main.js'),
  scheduler: join(root, 'apps/scheduler/dist/main.js'),
  executor: join(root, 'apps/executor/dist/main.js'),
  watchdog: join(root, 'apps/executor/dist/watchdog.js'),
};

/**
 * Files modules read at run time from a path relative to their own file: where they go in the
 * bundle directory, and the expression rewritten to find them there (`__dirname` is the
 * bundle's directory).
 */
const RELOCATED = [
  {
    module: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/,
    from: /\$\{__dirname\}\/\.\.\/proto\//g,
    to: '${__dirname}/etcd3-proto/',
    copy: [join(dirname(require.resolve('etcd3/package.json')), 'proto'), 'etcd3-proto'],
  },
  {
    module: /[\\/]libs[\\/]history[\\/]dist[\\/]migrate\.js$/,
    from: /__dirname, '\.\.', 'migrations'/g,
    to: "__dirname, 'migrations'",
    copy: [join(root, 'libs/history/migrations'), 'migrations'],
  },
  {
    module: /[\\/]apps[\\/]admission[\\/]dist[\\/]console\.js$/,
    from: /__dirname, '\.\.\/\.\.\/console\/dist'/g,
    to: "__dirname, 'console'",
    copy: [join(root, 'apps/console/dist'), 'console'],
  },
  {
    // the executor's watchdog is bundled beside it
    module: /[\\/]apps[\\/]executor[\\/]dist[\\/]agent\.js$/,
    from: /\(0, \w+\.dirname\)\(require\.resolve\('@batchapi\/executor\/package\.json'\)\), 'dist', 'watchdog\.js'/g,
    to: "__dirname, 'watchdog.js'",
  },
];

/**
 * Optional packages we do not install, loaded only when present (`import()` inside a try):
 * left to run-time resolution, where they are absent. pg's native binding; NestJS's other
 * platforms, validation, views and microservice transports.
 */
const EXTERNAL = [
  'pg-native',
  '@nestjs/platform-express',
  '@nestjs/websockets',
  '@fastify/multipart',
  '@fastify/view',
  'class-transformer',
  'class-validator',
  '@nats-io/transport-node',
  'amqp-connection-manager',
  'ioredis',
  'kafkajs',
  'mqtt',
];

const relocate = {
  name: 'relocate',
  setup(b) {
    for (const r of RELOCATED) {
      b.onLoad({ filter: r.module }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        const found = text.match(r.from)?.length ?? 0;
        if (!found) throw new Error(`${args.path} no longer contains ${r.from}: update RELOCATED in apps/cli/build.mjs`);
        r.seen = true;
        return { contents: text.replace(r.from, r.to), loader: 'js' };
      });
    }
  },
};

for (const entry of Object.values(ENTRIES))
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run tsc -b tsconfig.build.json first (npm run build does)`);
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: ENTRIES,
  outdir: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // minified to ~24 MB from ~58 MB; function and class names stay (NestJS names things by them, and stack traces read)
  minify: true,
  keepNames: true,
  external: EXTERNAL,
  // ES modules bundled into CommonJS: import.meta is the bundle file's (NestJS loads optional packages with createRequire(import.meta.url))
  banner: { js: "'use strict';\nconst __bundle_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  define: { 'import.meta.url': '__bundle_import_meta_url', 'import.meta.dirname': '__dirname', 'import.meta.filename': '__filename' },
  plugins: [relocate],
  logLevel: 'warning',
  legalComments: 'none',
});
for (const r of RELOCATED) {
  if (!r.seen) throw new Error(`no bundle includes a module matching ${r.module}: update RELOCATED in apps/cli/build.mjs`);
  // the files only (the console's dist also holds its type declarations)
  if (r.copy) cpSync(r.copy[0], join(out, r.copy[1]), { recursive: true, filter: (src) => !/^types\b|\.d\.ts$/.test(relative(r.copy[0], src)) });
}
const cli = join(out, 'batch.js');
const text = readFileSync(cli, 'utf8');
if (!text.startsWith('#!')) writeFileSync(cli, `#!/usr/bin/env node\n${text}`);
chmodSync(cli, 0o755);
