/**
 * `working_dir` packages (issue 15): a directory of user code packed by the CLI or an SDK,
 * uploaded once per tenant and digest, fetched and unpacked by executors as a task's working
 * directory. Owns the package format, its digest, its blob key, its verification and its
 * unpacking.
 *
 * The format is a plain ustar archive written by this module (and byte for byte the same by the
 * Python SDK's `batchapi.working_dir`): regular files only, sorted by path (bytewise UTF-8),
 * mode 0755 when any executable bit is set else 0644, uid, gid and mtime 0, no user or group
 * names, two zero blocks at the end. The digest `sha256:<hex>` is of that tar; it travels and is
 * stored gzip-compressed. The digest is of the tar rather than of the tar.gz because two zlib
 * builds (Node's and CPython's) need not compress the same bytes the same way.
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import ignore, { type Ignore } from 'ignore';
import { extract } from 'tar';
import type { BlobContent } from './blob-store';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Largest working dir packed, uploaded or fetched by default: its tar, in bytes. @default 104857600 (100 MiB) */
export const DEFAULT_WORKING_DIR_MAX_BYTES = 100 * 1024 * 1024;

/** How a working dir is stored: the tar, gzip-compressed. */
export const WORKING_DIR_CONTENT: BlobContent = { contentType: 'application/x-tar', contentEncoding: 'gzip' };

/** The files at the root of a working dir whose patterns (gitignore syntax) leave files out. */
export const IGNORE_FILES = ['.gitignore', '.batchignore'] as const;

/** Key of a tenant's working dir: `workdirs/{tenant}/{digest}` — one tenant never reads another's. */
export function workingDirKey(tenant: string, digest: string): string {
  return `workdirs/${tenant}/${digest}`;
}

/** A working dir that cannot be packed; `code` says why. */
export class WorkingDirError extends Error {
  constructor(
    readonly code: 'working_dir_too_large' | 'working_dir_path_too_long' | 'working_dir_unreadable',
    message: string,
  ) {
    super(message);
    this.name = 'WorkingDirError';
  }
}

/** A packed working dir. */
export interface PackedWorkingDir {
  /** `sha256:<hex>` of the tar. */
  digest: string;
  /** The tar, gzip-compressed: what is uploaded. */
  gz: Buffer;
  /** Files packed. */
  files: number;
  /** Bytes of the tar. */
  tarBytes: number;
  /** Paths left out because they are not regular files or directories (symbolic links, sockets…). */
  skipped: string[];
}

/** Options of `packWorkingDir`. */
export interface PackOptions {
  /** Largest tar packed, in bytes; a larger dir is refused before any file is read. @default DEFAULT_WORKING_DIR_MAX_BYTES (100 MiB) */
  maxBytes?: number;
  /** How the size option is named to the user in the error (e.g. `--working-dir-max-mib`). @default "maxBytes" */
  optionName?: string;
}

const BLOCK = 512;
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/**
 * Packs `root` as a working dir: its regular files, less `.git/` and what the root's
 * `.gitignore` and `.batchignore` ignore (symbolic links are left out and listed in `skipped`).
 * @throws WorkingDirError working_dir_too_large, before any file's bytes are read, naming `optionName`
 */
export async function packWorkingDir(root: string, opts: PackOptions = {}): Promise<PackedWorkingDir> {
  const maxBytes = opts.maxBytes ?? DEFAULT_WORKING_DIR_MAX_BYTES;
  const { files, skipped } = await listWorkingDir(root);
  const tarBytes = files.reduce((n, f) => n + BLOCK + padded(f.size), 2 * BLOCK);
  if (tarBytes > maxBytes) {
    const biggest = [...files].sort((a, b) => b.size - a.size).slice(0, 3);
    throw new WorkingDirError(
      'working_dir_too_large',
      `working dir ${root} packs to ${mib(tarBytes)} MiB, over the limit of ${mib(maxBytes)} MiB (${opts.optionName ?? 'maxBytes'}); ` +
        `leave large files out with .batchignore (largest: ${biggest.map((f) => `${f.path} ${mib(f.size)} MiB`).join(', ')})`,
    );
  }
  const parts: Buffer[] = [];
  for (const f of files) {
    const body = await readFile(join(root, f.path)).catch((err: Error) => {
      throw new WorkingDirError('working_dir_unreadable', `could not read ${f.path} of working dir ${root}: ${err.message}`);
    });
    if (body.length !== f.size) throw new WorkingDirError('working_dir_unreadable', `${f.path} changed while the working dir was packed; pack again`);
    parts.push(tarHeader(f.path, f.executable ? 0o755 : 0o644, body.length), body, Buffer.alloc(padded(body.length) - body.length));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  const tar = Buffer.concat(parts);
  return { digest: digestOf(tar), gz: await gzipAsync(tar), files: files.length, tarBytes: tar.length, skipped };
}

/** `sha256:<hex>` of a tar. */
export function digestOf(tar: Buffer): string {
  return `sha256:${createHash('sha256').update(tar).digest('hex')}`;
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

interface ListedFile {
  /** Relative POSIX path. */
  path: string;
  size: number;
  executable: boolean;
}

/** The files `packWorkingDir` packs, in archive order (bytewise UTF-8 order of their paths). */
export async function listWorkingDir(root: string): Promise<{ files: ListedFile[]; skipped: string[] }> {
  const ig = ignore().add('.git/');
  for (const name of IGNORE_FILES) {
    const text = await readFile(join(root, name), 'utf8').catch(() => undefined);
    if (text !== undefined) ig.add(text);
  }
  const files: ListedFile[] = [];
  const skipped: string[] = [];
  const rootStat = await stat(root).catch((err: Error) => {
    throw new WorkingDirError('working_dir_unreadable', `working dir ${root} cannot be read: ${err.message}`);
  });
  if (!rootStat.isDirectory()) throw new WorkingDirError('working_dir_unreadable', `working dir ${root} is not a directory`);
  await walk(root, '', ig, files, skipped);
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  return { files, skipped };
}

async function walk(root: string, rel: string, ig: Ignore, files: ListedFile[], skipped: string[]): Promise<void> {
  for (const name of await readdir(join(root, rel))) {
    const path = rel ? `${rel}/${name}` : name;
    const s = await lstat(join(root, path));
    if (s.isDirectory()) {
      if (!ig.ignores(`${path}/`)) await walk(root, path, ig, files, skipped);
    } else if (ig.ignores(path)) {
      continue;
    } else if (s.isFile()) {
      files.push({ path, size: s.size, executable: (s.mode & 0o111) !== 0 });
    } else {
      skipped.push(path);
    }
  }
}

/** A ustar header of a regular file (see the module's header for the fixed fields). */
function tarHeader(path: string, mode: number, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const { name, prefix } = splitPath(path);
  h.write(name, 0, 100, 'utf8');
  const octal = (value: number, offset: number, width: number) => h.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
  octal(mode, 100, 8);
  octal(0, 108, 8); // uid
  octal(0, 116, 8); // gid
  octal(size, 124, 12);
  octal(0, 136, 12); // mtime
  h.write('        ', 148, 8, 'ascii'); // the checksum counts itself as spaces
  h.write('0', 156, 1, 'ascii'); // a regular file
  h.write('ustar\u000000', 257, 8, 'ascii');
  octal(0, 329, 8); // devmajor
  octal(0, 337, 8); // devminor
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/**
 * A path as ustar's `name` (≤ 100 bytes) and `prefix` (≤ 155 bytes), split at the last `/` that
 * fits both. @throws WorkingDirError working_dir_path_too_long
 */
export function splitPath(path: string): { name: string; prefix: string } {
  const bytes = Buffer.from(path, 'utf8');
  if (bytes.length <= 100) return { name: path, prefix: '' };
  for (let i = Math.min(bytes.length - 2, 155); i > 0; i--) {
    if (bytes[i] === 0x2f && bytes.length - i - 1 <= 100) {
      return { prefix: bytes.subarray(0, i).toString('utf8'), name: bytes.subarray(i + 1).toString('utf8') };
    }
  }
  throw new WorkingDirError(
    'working_dir_path_too_long',
    `${path}: paths in a working dir are at most 255 bytes (a name at most 100); leave it out with .batchignore`,
  );
}

/** Why an uploaded or fetched package is refused. */
export type WorkingDirProblem = { kind: 'too_large'; maxBytes: number } | { kind: 'not_gzip'; detail: string } | { kind: 'digest_mismatch'; actual: string };

/** Checks a package's gzip bytes against `digest`: the problem, or undefined when it is that tar and at most `maxBytes`. */
export async function checkWorkingDir(gz: Buffer, digest: string, maxBytes: number): Promise<WorkingDirProblem | undefined> {
  let tar: Buffer;
  try {
    tar = await gunzipAsync(gz, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return { kind: 'too_large', maxBytes };
    return { kind: 'not_gzip', detail: (err as Error).message };
  }
  const actual = digestOf(tar);
  return actual === digest ? undefined : { kind: 'digest_mismatch', actual };
}

/**
 * Unpacks a package (its gzip file) into `dest` (made anew), regular files and directories
 * only, never outside `dest`, then takes every write permission away (directories 0555, files
 * 0444 or 0555).
 */
export async function unpackWorkingDir(gzFile: string, dest: string): Promise<void> {
  await removeTree(dest);
  await mkdir(dest, { recursive: true });
  await extract({
    file: gzFile,
    cwd: dest,
    strict: true,
    preserveOwner: false,
    filter: (_path, entry) => 'type' in entry && (entry.type === 'File' || entry.type === 'Directory'),
  });
  await makeReadOnly(dest);
}

/** Removes a tree, read-only ones too (an earlier unpack: a user other than root cannot remove files from a 0555 directory). */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch {
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o755).catch(() => undefined);
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (entry.isDirectory()) await makeWritable(join(dir, entry.name));
}

/** Takes every write permission away from a tree (directories 0555, files 0444 or 0555 when executable); symbolic links are left as they are. */
export async function makeReadOnly(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await makeReadOnly(p);
    else if (entry.isFile()) await chmod(p, (await stat(p)).mode & 0o111 ? 0o555 : 0o444);
  }
  await chmod(dir, 0o555);
}
