/**
 * A local S3-compatible server for tests and `batch dev`: the Versity S3 Gateway (`versitygw`,
 * Apache-2.0, installed with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`;
 * `.ci/run` does) over a directory, on a free loopback port, with one bucket made.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort, stopProcess, waitFor } from '@batchapi/proc';
import type { S3BlobStoreOptions } from './s3';

/** The gateway's version `.ci/run` installs. */
export const VERSITYGW_VERSION = 'v1.8.0';

/** A running local S3 server. */
export interface LocalS3 {
  /** Settings of an `S3BlobStore` on its bucket. */
  options: S3BlobStoreOptions & Required<Pick<S3BlobStoreOptions, 'endpoint' | 'credentials'>>;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** `versitygw` from PATH, else Go's install directory (`$GOBIN`, `$GOPATH/bin`, `~/go/bin`); undefined when none. */
export function findVersitygw(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter), env.GOBIN, env.GOPATH && join(env.GOPATH, 'bin'), join(homedir(), 'go', 'bin')];
  return dirs
    .filter((d): d is string => !!d)
    .map((d) => join(d, 'versitygw'))
    .find((p) => existsSync(p));
}

/**
 * Starts the gateway over `dir` (made if absent) with bucket `bucket`, and waits until it answers.
 * @throws Error naming the install command when `versitygw` is not installed
 */
export async function startS3Server(dir: string, bucket = 'batchapi'): Promise<LocalS3> {
  const binary = findVersitygw();
  if (!binary) {
    throw new Error(`versitygw is not installed: go install github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION} (.ci/run does)`);
  }
  // a bucket of the posix backend is a directory under its root
  mkdirSync(join(dir, bucket), { recursive: true });
  const port = await freePort();
  const credentials = { accessKeyId: 'batch-local', secretAccessKey: 'batch-local-secret-key' };
  const child = spawn(binary, ['--access', credentials.accessKeyId, '--secret', credentials.secretAccessKey, '--port', `127.0.0.1:${port}`, 'posix', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const endpoint = `http://127.0.0.1:${port}`;
  const up = await waitFor(
    () => fetch(endpoint).then((r) => r.status > 0),
    (ok) => ok || child.exitCode !== null,
    { timeoutMs: 15_000 },
  ).catch(() => false);
  if (!up || child.exitCode !== null) {
    await stopProcess(child);
    throw new Error(`versitygw did not start on ${endpoint}: ${stderr.trim() || `exit ${child.exitCode}`}`);
  }
  return { options: { bucket, endpoint, credentials, forcePathStyle: true }, process: child, stop: () => stopProcess(child) };
}
