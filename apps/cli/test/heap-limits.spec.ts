import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { heapFlags, SERVICE_HEAP_MIB } from '../src/local-cluster';

const CHART_VALUES = join(__dirname, '..', '..', '..', 'deploy', 'helm', 'batchapi', 'values.yaml');

it("gives each service the Helm chart's default heap limit", () => {
  const values = load(readFileSync(CHART_VALUES, 'utf8')) as Record<string, { maxOldSpaceMiB?: number }>;
  for (const [service, mib] of Object.entries(SERVICE_HEAP_MIB)) expect([service, values[service]?.maxOldSpaceMiB]).toEqual([service, mib]);
});

it.each([
  // service, NODE_OPTIONS, flags
  ['quota', undefined, ['--max-old-space-size=768']],
  ['scheduler', '--enable-source-maps', ['--max-old-space-size=3072']],
  // the caller's own limit wins: no second flag (argv would override NODE_OPTIONS)
  ['executor', '--max-old-space-size=4096', []],
  ['admission', '--trace-warnings --max-old-space-size=256', []],
  // a name the table does not know starts without a flag
  ['etcd', undefined, []],
])('heapFlags(%s, NODE_OPTIONS=%s) is %j', (service, nodeOptions, flags) => {
  expect(heapFlags(service, nodeOptions)).toEqual(flags);
});
