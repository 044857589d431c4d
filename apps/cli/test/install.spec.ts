/**
 * The installable `batch`: `npm pack` of apps/cli installed with `npm install -g` into a fresh
 * prefix, offline (the bundle needs nothing from a registry), then run from another directory
 * as a user would: its version, its contexts, and `batch dev`, whose services must come from the
 * installed copy, not the checkout.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevProcess, ROOT } from './dev-process';

let dir: string;
let batchBin: string;
let env: NodeJS.ProcessEnv;
let elsewhere: string;
/** Where npm installed the package. */
let installed: string;

/** Runs `cmd` to its end without blocking this process (the test's HTTP server answers meanwhile); killed after `timeoutMs`. */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}
const batch = (args: string[], extra: NodeJS.ProcessEnv = {}, timeoutMs?: number) =>
  run(batchBin, args, { cwd: elsewhere, env: { ...env, ...extra }, timeoutMs });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cli-install-'));
  elsewhere = join(dir, 'project');
  mkdirSync(elsewhere);
  // npm's own cache and logs stay in the test's directory; no registry is asked (--offline)
  const npmEnv = { npm_config_cache: join(dir, 'npm-cache'), npm_config_update_notifier: 'false' };
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: join(ROOT, 'apps/cli'), env: npmEnv, timeoutMs: 60_000 });
  expect(packed).toMatchObject({ status: 0 });
  const tarball = join(dir, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0].filename);
  const prefix = join(dir, 'prefix');
  const install = await run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], {
    cwd: elsewhere,
    env: npmEnv,
    timeoutMs: 60_000,
  });
  expect(install).toMatchObject({ status: 0 });
  batchBin = join(prefix, 'bin', 'batch');
  installed = join(prefix, 'lib/node_modules/@batchapi/cli');
  env = {
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    BATCH_API: '',
    BATCH_TOKEN: '',
    BATCH_OPERATOR_TOKEN: '',
    BATCH_CONTEXT: '',
  };
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('installs one executable bundle that prints its version from any directory', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'apps/cli/package.json'), 'utf8')) as { version: string };
  expect(await batch(['--version'])).toMatchObject({ status: 0, stdout: `${pkg.version}\n`, stderr: '' });
  expect(readFileSync(join(installed, 'dist/bundle/batch.js'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  expect(statSync(join(installed, 'dist/bundle/batch.js')).mode & 0o111).not.toBe(0);
  // the package has no dependencies to install: nothing beside the bundle
  expect(existsSync(join(installed, 'node_modules'))).toBe(false);
});

it('batch dev from the installed copy runs its bundled services, selects its dev context, and gives the earlier one back when it stops', async () => {
  // a context of the user's, selected before batch dev
  expect(await batch(['config', 'set-context', 'lab', '--api', 'http://127.0.0.1:9', '--token', 'lab-t'])).toMatchObject({
    status: 0,
    stdout: `Context "lab" created in ${join(dir, 'config/batchapi/config.json')}.\n`,
  });
  expect(await batch(['config', 'use-context', 'lab'])).toMatchObject({ status: 0, stdout: 'Switched to context "lab".\n' });

  const dataDir = join(dir, 'data');
  const dev = new DevProcess(['--data-dir', dataDir], env, [batchBin], elsewhere);
  try {
    const { api } = await dev.up();
    // the services are the installed bundles, not the checkout's builds
    // each process's script: the first argument after node's own flags (e.g. the heap limit, SERVICE_HEAP_MIB)
    const services = dev.clusterPids(dataDir).map(
      (p) =>
        readFileSync(`/proc/${p}/cmdline`, 'utf8')
          .split('\0')
          .slice(1)
          .find((a) => !a.startsWith('-')) ?? '',
    );
    expect(services).toEqual(expect.arrayContaining(['admission', 'quota', 'scheduler', 'executor'].map((s) => join(installed, `dist/bundle/${s}.js`))));

    const listed = await batch(['config', 'get-contexts']);
    expect(listed.stdout).toBe(
      `CURRENT  NAME  API${' '.repeat(api.length - 1)}OPERATOR\n*        dev   ${api}  yes\n         lab   http://127.0.0.1:9${' '.repeat(api.length - 16)}no\n`,
    );
    expect(listed.stdout).not.toMatch(/bt_|lab-t/); // tokens are never printed
    // an operator command uses the dev context's operator token; --as tenant gets the tenant's answer
    expect(await batch(['nodes'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/\nlocal-0\s.*ready\n$/) });
    expect(await batch(['nodes', '--as', 'tenant'])).toMatchObject({ status: 1, stderr: expect.stringContaining('error: permission_denied: ') });
    // the bundled executor runs a task
    expect(await batch(['submit', '--wait', '--cpu', '100m', '-o', 'json', '--', 'true'])).toMatchObject({
      status: 0,
      stdout: expect.stringContaining('"phase": "Succeeded"'),
    });

    process.kill(-dev.pid, 'SIGINT');
    expect(await dev.exited).toBe(0);
    expect(await batch(['config', 'current-context'])).toMatchObject({ status: 0, stdout: 'lab\n' });
  } finally {
    dev.killAll();
  }
}, 60_000);
