/**
 * A local wheel directory for tests of Python environments: tiny pure-Python wheels written by
 * hand (a zip with the module, METADATA, WHEEL and a RECORD of hashes — what pip installs), so no
 * test needs an index, the network or a build backend.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const WRITE_WHEEL = `
import base64, hashlib, sys, zipfile
out, name, version, value = sys.argv[1:5]
dist = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": f"VALUE = {value!r}\\n",
    f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
    f"{dist}/WHEEL": "Wheel-Version: 1.0\\nGenerator: batchapi-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{dist}/RECORD,,")
with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
    z.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
`;

/** Writes the wheel of package `name` (a module whose `VALUE` is `value`) at `version` into `dir`. */
export function writeWheel(dir: string, name: string, version: string, value: string): void {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('python3', ['-c', WRITE_WHEEL, dir, name, version, value], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`could not write wheel ${name}: ${r.stderr}`);
}

/** A package index that never answers (its requests hang until `close`): a pip build that cannot finish. */
export async function hangingIndex(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(() => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
