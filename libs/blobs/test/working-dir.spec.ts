/**
 * Working dir packages: the same tree gives the same digest wherever and whenever it is packed;
 * .git/, .gitignore and .batchignore leave files out; an oversize dir is refused before upload
 * with the option named; a package is checked against its digest; unpacking is read-only and
 * stays inside its directory.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFile, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { checkWorkingDir, digestOf, listWorkingDir, packWorkingDir, splitPath, unpackWorkingDir, workingDirKey } from '../src';

let scratch: string;
beforeEach(() => (scratch = mkdtempSync(join(tmpdir(), 'workdir-'))));
afterEach(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes `files` (path → content) under a new directory of the scratch dir. */
function tree(name: string, files: Record<string, string>): string {
  const root = join(scratch, name);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  mkdirSync(root, { recursive: true });
  return root;
}

describe('packWorkingDir', () => {
  it('gives the same digest for the same files whatever their mtimes, order of creation and non-executable mode bits', async () => {
    const a = tree('a', { 'main.py': 'print(1)\n', 'lib/util.py': 'X = 2\n', 'run.sh': '#!/bin/sh\n' });
    const b = tree('b', { 'run.sh': '#!/bin/sh\n', 'lib/util.py': 'X = 2\n', 'main.py': 'print(1)\n' });
    chmodSync(join(a, 'run.sh'), 0o755);
    chmodSync(join(b, 'run.sh'), 0o700);
    chmodSync(join(b, 'main.py'), 0o600);
    utimesSync(join(b, 'main.py'), new Date(1_000_000), new Date(1_000_000));
    const [pa, pb] = [await packWorkingDir(a), await packWorkingDir(b)];
    expect(pa.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(pb.digest).toBe(pa.digest);
    expect(pa.files).toBe(3);
  });

  it('changes the digest when a file changes or gains the executable bit', async () => {
    const root = tree('a', { 'main.py': 'print(1)\n' });
    const first = (await packWorkingDir(root)).digest;
    chmodSync(join(root, 'main.py'), 0o755);
    const executable = (await packWorkingDir(root)).digest;
    writeFileSync(join(root, 'main.py'), 'print(2)\n');
    const edited = (await packWorkingDir(root)).digest;
    expect(new Set([first, executable, edited]).size).toBe(3);
  });

  it('leaves out .git/, what .gitignore and .batchignore name, and symbolic links', async () => {
    const root = tree('a', {
      '.git/HEAD': 'ref: refs/heads/main\n',
      '.gitignore': '*.pyc\nbuild/\n/top-only.txt\n',
      '.batchignore': 'data/\n!data/keep.csv\nsecret.env\n',
      'main.py': '',
      'pkg/mod.pyc': '',
      'pkg/mod.py': '',
      'build/out.bin': '',
      'top-only.txt': '',
      'pkg/top-only.txt': '',
      'data/big.csv': '',
      'data/keep.csv': '',
      'pkg/secret.env': '',
    });
    symlinkSync('/etc/passwd', join(root, 'link'));
    const { files, skipped } = await listWorkingDir(root);
    // data/keep.csv stays out: as in git, a file of an excluded directory cannot be re-included
    expect(files.map((f) => f.path)).toEqual(['.batchignore', '.gitignore', 'main.py', 'pkg/mod.py', 'pkg/top-only.txt']);
    expect(skipped).toEqual(['link']);
  });

  it('refuses a dir over the bound before reading any file, naming the option and the largest files', async () => {
    const root = tree('a', { 'small.txt': 'x', 'weights.bin': 'y'.repeat(4096) });
    await expect(packWorkingDir(root, { maxBytes: 4096, optionName: '--working-dir-max-mib' })).rejects.toMatchObject({
      code: 'working_dir_too_large',
      message: expect.stringMatching(/over the limit of 0\.0 MiB \(--working-dir-max-mib\); leave large files out with \.batchignore \(largest: weights\.bin/),
    });
  });

  it('writes a tar that unpacks to the same files, read-only, executable bits kept', async () => {
    const root = tree('a', { 'main.py': 'print("hi")\n', 'deep/er/file.txt': 'deep\n', 'run.sh': '#!/bin/sh\necho ok\n' });
    chmodSync(join(root, 'run.sh'), 0o755);
    const packed = await packWorkingDir(root);
    const gz = join(scratch, 'p.tar.gz');
    writeFileSync(gz, packed.gz);
    const dest = join(scratch, 'out');
    await unpackWorkingDir(gz, dest);
    expect(readFileSync(join(dest, 'main.py'), 'utf8')).toBe('print("hi")\n');
    expect(readFileSync(join(dest, 'deep/er/file.txt'), 'utf8')).toBe('deep\n');
    expect(statSync(join(dest, 'run.sh')).mode & 0o777).toBe(0o555);
    expect(statSync(join(dest, 'main.py')).mode & 0o777).toBe(0o444);
    expect(statSync(dest).mode & 0o777).toBe(0o555);
    // unpacking again over a read-only copy replaces it
    await unpackWorkingDir(gz, dest);
    expect(readFileSync(join(dest, 'main.py'), 'utf8')).toBe('print("hi")\n');
  });

  it('keeps a long path in the ustar prefix and refuses one too long for it', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}`;
    expect(splitPath(long)).toEqual({ prefix: 'd'.repeat(120), name: 'f'.repeat(90) });
    expect(() => splitPath('x'.repeat(101))).toThrow(/at most 255 bytes \(a name at most 100\)/);
    const root = tree('a', { [long]: 'long\n' });
    const gz = join(scratch, 'p.tar.gz');
    writeFileSync(gz, (await packWorkingDir(root)).gz);
    await unpackWorkingDir(gz, join(scratch, 'out'));
    expect(readFileSync(join(scratch, 'out', long), 'utf8')).toBe('long\n');
  });
});

/** The tree sdk/python/tests/test_working_dir.py packs too: ignore rules, a long path, a non-ASCII name, an executable. */
const FIXTURE: Record<string, string> = {
  'main.py': 'print("hi")\n',
  'pkg/__init__.py': '',
  'pkg/util.py': 'X = 1\n',
  'run.sh': '#!/bin/sh\necho ok\n',
  'café.txt': 'é\n',
  '.gitignore': '*.log\nbuild/\n',
  '.batchignore': 'data/\n/top.txt\n',
  'debug.log': 'x',
  'build/out': 'x',
  'data/a.csv': 'x',
  'top.txt': 'x',
  'pkg/top.txt': 'kept\n',
  [`a/${'d'.repeat(120)}/f.txt`]: 'long\n',
  '.git/HEAD': 'x',
};
/** Its digest: the same constant is in the Python SDK's test, so each side is pinned to it. */
const GOLDEN = 'sha256:d5a391e28857686a01d0c2223bc1bb55bea14bba8979b74178547f77a49c9012';
const hasPython = spawnSync('python3', ['-c', 'import sys; sys.exit(sys.version_info < (3, 10))']).status === 0;

describe('the Python SDK packs as the CLI does', () => {
  it('packs the shared fixture to the golden digest', async () => {
    const root = tree('g', FIXTURE);
    chmodSync(join(root, 'run.sh'), 0o755);
    expect(await packWorkingDir(root)).toMatchObject({ digest: GOLDEN, files: 9 });
  });

  (hasPython ? it : it.skip)('gives the same digest as batchapi.working_dir.pack (python3) for the same trees', async () => {
    const trees = [
      tree('g', FIXTURE),
      tree('other', { 'x/y/z.txt': 'z', 'ünï/cödé.py': '# -*- coding: utf-8 -*-\n', '.gitignore': '**/tmp\n!keep\n*.o\n', 'a/tmp/t': 't', 'b.o': '' }),
      tree('empty', {}),
    ];
    chmodSync(join(trees[0], 'run.sh'), 0o755);
    const py = 'import sys\nfrom batchapi.working_dir import pack\nfor r in sys.argv[1:]: print(pack(r).digest)';
    const { stdout } = await promisify(execFile)('python3', ['-c', py, ...trees], {
      env: { ...process.env, PYTHONPATH: join(__dirname, '../../../sdk/python') },
      encoding: 'utf8',
    });
    expect(stdout.trim().split('\n')).toEqual(await Promise.all(trees.map(async (t) => (await packWorkingDir(t)).digest)));
  });
});

describe('checkWorkingDir', () => {
  it('accepts the package of its digest and names what is wrong with any other', async () => {
    const tar = (await packWorkingDir(tree('a', { 'a.txt': 'a' }))).gz;
    const digest = (await packWorkingDir(tree('b', { 'a.txt': 'a' }))).digest;
    expect(await checkWorkingDir(tar, digest, 1 << 20)).toBeUndefined();
    const other = digestOf(Buffer.from('other'));
    expect(await checkWorkingDir(tar, other, 1 << 20)).toMatchObject({ kind: 'digest_mismatch', actual: digest });
    expect(await checkWorkingDir(Buffer.from('not gzip'), digest, 1 << 20)).toMatchObject({ kind: 'not_gzip' });
    expect(await checkWorkingDir(gzipSync(Buffer.alloc(10_000)), digest, 4096)).toEqual({ kind: 'too_large', maxBytes: 4096 });
  });

  it('keys packages per tenant', () => {
    expect(workingDirKey('team-a', 'sha256:ab')).toBe('workdirs/team-a/sha256:ab');
  });
});

describe('unpackWorkingDir', () => {
  it('never writes outside its directory, whatever the archive says', async () => {
    // a hand-made tar whose entry climbs out: node-tar strips the ".." parts (strict: it refuses)
    const { create } = await import('tar');
    const src = tree('evil', { 'x.txt': 'x' });
    const gz = join(scratch, 'evil.tar.gz');
    await create({ gzip: true, file: gz, cwd: src, preservePaths: true }, ['../evil/x.txt']);
    const dest = join(scratch, 'deep', 'out');
    await unpackWorkingDir(gz, dest).catch(() => undefined);
    expect(() => statSync(join(scratch, 'deep', 'evil', 'x.txt'))).toThrow();
  });
});
