/** The CLI's version: its package's, found upwards from this file (apps/cli/dist/, or dist/bundle/ of an installed copy). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function cliVersion(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@batchapi/cli' && pkg.version) return pkg.version;
    } catch {
      /* no package.json here: look further up */
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
