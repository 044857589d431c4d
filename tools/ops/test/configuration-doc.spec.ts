/** docs/configuration.md is what the configuration schemas generate: it cannot drift from the code. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIGURATION_DOC, configurationDoc, REGENERATE_COMMAND } from '../src/configuration-doc';

const ROOT = join(__dirname, '../../..');

it('docs/configuration.md is what the configuration schemas generate', () => {
  const onDisk = readFileSync(join(ROOT, CONFIGURATION_DOC), 'utf8');
  const generated = configurationDoc();
  if (onDisk !== generated) {
    const lines = onDisk.split('\n');
    const at = generated.split('\n').findIndex((l, i) => l !== lines[i]);
    throw new Error(
      `${CONFIGURATION_DOC} is out of date with the configuration schemas (first difference at line ${at + 1}: ${JSON.stringify(lines[at])}); regenerate it with \`${REGENERATE_COMMAND}\``,
    );
  }
});

it('documents each variable once, with a type and a meaning', () => {
  const rows = [...configurationDoc().matchAll(/^\| `([A-Z_]+)` \| ([^|]+) \|(?:[^|]+\|){2} ([^|]+) \|$/gm)];
  expect(rows.length).toBeGreaterThan(40);
  expect(new Set(rows.map((m) => m[1])).size).toBe(rows.length);
});
