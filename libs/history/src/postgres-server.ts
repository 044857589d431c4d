/**
 * Starts a real PostgreSQL server on a free loopback port: one per integration suite, and the
 * history database of `batch dev`. Uses Debian's PostgreSQL (`apt-get install -y postgresql`):
 * `initdb` and `postgres` on PATH or under /usr/lib/postgresql/<version>/bin. Both refuse to run
 * as root, so when this process is root they run as the `postgres` system user, which then owns
 * the data directory.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { freePort, stopProcess, waitFor } from '@batchapi/proc';
import pg from 'pg';

/** Options of a local PostgreSQL server. */
export interface PostgresServerOptions {
  /** Data directory (`PGDATA`): initialized when empty or absent, reused when it holds a cluster, kept on stop. @default a temp dir, removed on stop */
  dataDir?: string;
  /** TCP port on 127.0.0.1. @default a free port */
  port?: number;
  /**
   * Trade durability for speed, for tests: `fsync`, `full_page_writes` and `synchronous_commit`
   * off, and `initdb --no-sync`. A crash of the machine loses the data. @default false
   */
  ephemeral?: boolean;
  /** Directory of `initdb` and `postgres`. @default the one of `initdb` on PATH, else the newest /usr/lib/postgresql/<version>/bin */
  binDir?: string;
  /** More server settings, each passed as `-c name=value` (e.g. `{ max_connections: '200' }`). @default none */
  settings?: Record<string, string>;
  /** How long to wait for the server to accept connections, in milliseconds. @default 30000 */
  startTimeoutMs?: number;
}

/** A running local PostgreSQL. */
export interface LocalPostgres {
  /** Connection URL of the `postgres` database as the `postgres` superuser (trust auth, no password). */
  url: string;
  port: number;
  dataDir: string;
  /** Fast shutdown (rolls back open transactions, then exits); removes the data dir when it was a temp dir. */
  stop(): Promise<void>;
  /** The server process and its command line (a supervisor records them to stop a server its crashed owner left). */
  process: ChildProcess;
  argv: string[];
}

/** The superuser `initdb` creates, and the OS user the server runs as when this process is root. */
const SUPERUSER = 'postgres';

/** Finds the directory of `initdb` and `postgres`, or says how to install them. */
export function postgresBinDirOrExplain(binDir?: string): string {
  const candidates = binDir ? [binDir] : [...onPath('initdb'), ...debianBinDirs()];
  const found = candidates.find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'postgres')));
  if (!found) {
    throw new Error(
      `PostgreSQL was not found (${binDir ?? 'initdb on PATH or under /usr/lib/postgresql/*/bin'}). ` +
        'Install it: sudo apt-get install -y postgresql (Debian/Ubuntu), or pass the directory of initdb and postgres as binDir.',
    );
  }
  return found;
}

/** Directories on PATH holding `name`, resolved through symlinks (Debian links only some binaries). */
function onPath(name: string): string[] {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => d && existsSync(join(d, name)))
    .map((d) => dirname(realpathSync(join(d, name))));
}

/** Debian's per-version bin directories, newest first. */
function debianBinDirs(): string[] {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(base, v, 'bin'));
}

/** The uid and gid to run the server as: none (this process's) unless this process is root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, SUPERUSER], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0) {
    throw new Error(
      `PostgreSQL refuses to run as root and there is no "${SUPERUSER}" user to run it as. ` +
        "Install Debian's postgresql package (it creates the user), or run as a non-root user.",
    );
  }
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/**
 * Starts PostgreSQL on 127.0.0.1 with its unix socket in the data dir, trust authentication for
 * local connections only, and waits until it accepts a query.
 */
export async function startPostgres(opts: PostgresServerOptions = {}): Promise<LocalPostgres> {
  const binDir = postgresBinDirOrExplain(opts.binDir);
  const user = serverUser();
  const ownDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? join(mkdtempSync(join(tmpdir(), 'batch-pg-')), 'data');
  const removeOnStop = ownDir ? dirname(dataDir) : undefined;
  try {
    prepareDataDir(dataDir, user);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) initCluster(binDir, dataDir, opts.ephemeral ?? false, user);
    const timeoutMs = opts.startTimeoutMs ?? 30000;
    // A free port can be taken between freePort() and the server's bind: try another one.
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort());
      const server = launch(binDir, dataDir, port, opts, user);
      const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
      try {
        await waitReady(url, server, timeoutMs);
      } catch (err) {
        await stopProcess(server.process, { signal: 'SIGINT', graceMs: 10_000 });
        if (!opts.port && attempt < 3 && /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(server.log())) continue;
        throw err;
      }
      return {
        url,
        port,
        dataDir,
        process: server.process,
        argv: server.argv,
        async stop() {
          await stopProcess(server.process, { signal: 'SIGINT', graceMs: 10_000 });
          if (removeOnStop) rmSync(removeOnStop, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    if (removeOnStop) rmSync(removeOnStop, { recursive: true, force: true });
    throw err;
  }
}

/** Creates database `name` on the server of `url` unless it exists, and returns its URL (a local cluster's history, kept across restarts). */
export async function ensureDatabase(url: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined); // a server ending the connection fails the query in flight too
  await client.connect();
  let exists: boolean;
  try {
    exists = (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
  if (!exists) return createDatabase(url, name);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates database `name` on the server of `url` and returns its URL: a fresh database per suite. */
export async function createDatabase(url: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`database name must be lowercase letters, digits and underscores (at most 63, not starting with a digit), got "${name}"`);
  }
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined); // a server ending the connection fails the query in flight too
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Makes the data dir, owned by the server's user, private as initdb and postgres require. */
function prepareDataDir(dataDir: string, user: { uid: number; gid: number } | undefined): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!user) return;
  chownSync(dataDir, user.uid, user.gid);
  chmodSync(dataDir, 0o700);
  // our temp dir's parent is root's 0700 dir: let the postgres user through it
  if (dirname(dataDir).startsWith(join(tmpdir(), 'batch-pg-'))) chownSync(dirname(dataDir), user.uid, user.gid);
  const probe = spawnSync('test', ['-w', dataDir], { uid: user.uid, gid: user.gid, cwd: '/' });
  if (probe.status !== 0) {
    throw new Error(
      `the ${SUPERUSER} user cannot write ${dataDir} (a parent directory is closed to it): choose a data dir it can reach, e.g. under /tmp or /var/lib`,
    );
  }
}

function initCluster(binDir: string, dataDir: string, ephemeral: boolean, user: { uid: number; gid: number } | undefined): void {
  const args = ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--no-locale', ...(ephemeral ? ['--no-sync'] : [])];
  const r = spawnSync(join(binDir, 'initdb'), args, { encoding: 'utf8', cwd: '/', ...user });
  if (r.error || r.status !== 0) {
    throw new Error(`initdb failed for ${dataDir} (exit ${r.status}): ${(r.error?.message ?? r.stderr).trim().split('\n').slice(-5).join(' | ')}`);
  }
  // Trust only this machine: the unix socket (in the 0700 data dir) and 127.0.0.1, nothing else.
  writeFileSync(join(dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
  if (user) chownSync(join(dataDir, 'pg_hba.conf'), user.uid, user.gid);
}

interface Server {
  process: ChildProcess;
  argv: string[];
  /** The last lines the server wrote to stderr. */
  log(): string;
}

function launch(binDir: string, dataDir: string, port: number, opts: PostgresServerOptions, user: { uid: number; gid: number } | undefined): Server {
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: dataDir,
    logging_collector: 'off',
    ...(opts.ephemeral ? { fsync: 'off', full_page_writes: 'off', synchronous_commit: 'off' } : {}),
    ...opts.settings,
  };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const p = spawn(join(binDir, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: '/', ...user });
  const lines: string[] = [];
  p.stderr?.setEncoding('utf8');
  p.stderr?.on('data', (chunk: string) => {
    lines.push(...chunk.split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - 20));
  });
  return { process: p, argv: [join(binDir, 'postgres'), ...args], log: () => lines.join('\n') };
}

/** Waits until the server at `url` answers a query; throws, with the server's log, once it exits or after `timeoutMs`. */
async function waitReady(url: string, server: Server, timeoutMs: number): Promise<void> {
  const probe = async (): Promise<'ready' | 'exited'> => {
    if (server.process.exitCode !== null || server.process.signalCode !== null) return 'exited';
    await answersQuery(url);
    return 'ready';
  };
  let state: 'ready' | 'exited';
  try {
    state = await waitFor(probe, () => true, { timeoutMs, intervalMs: 50 });
  } catch (err) {
    throw new Error(`postgres did not accept connections within ${timeoutMs} ms at ${url} (${(err as Error)?.message}): ${server.log()}`, { cause: err });
  }
  if (state === 'exited') {
    throw new Error(`postgres exited (${server.process.exitCode ?? server.process.signalCode}) before accepting connections: ${server.log()}`);
  }
}

/** Connects to `url` and runs `SELECT 1`; throws what the connect or the query threw. */
async function answersQuery(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}
