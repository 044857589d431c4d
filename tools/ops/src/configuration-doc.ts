/**
 * Generates docs/configuration.md from the services' configuration schemas: one table per
 * service (variable, type, default, unit, meaning). `npm run -s docs:config` rewrites the page;
 * tools/ops/test/configuration-doc.spec.ts fails when it differs from what this prints.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMISSION_ENV } from '@batchapi/admission';
import { EXECUTOR_ENV } from '@batchapi/executor';
import { QUOTA_ENV } from '@batchapi/quota';
import { BLOB_ENV, describeEnv, type EnvVarDoc, HISTORY_ENV, SERVICE_ENV } from '@batchapi/runtime';
import { SCHEDULER_ENV } from '@batchapi/scheduler';

/** The page, relative to the repository root. */
export const CONFIGURATION_DOC = 'docs/configuration.md';
/** The command that rewrites the page. */
export const REGENERATE_COMMAND = 'npm run -s docs:config';

const SECTIONS = [
  { title: 'Every service', schema: SERVICE_ENV, note: 'Read by admission, quota, scheduler and executor (`configFromEnv`, libs/runtime/src/config.ts).' },
  {
    title: 'History store',
    schema: HISTORY_ENV,
    note: 'Read by admission (reads) and quota (migrates, archives) (`historyUrlFromEnv`, libs/runtime/src/config.ts).',
  },
  {
    title: 'Blob store (task logs after their node)',
    schema: BLOB_ENV,
    note: "Read by the executor (uploads an ended attempt's logs) and admission (serves them) (`blobSettingsFromEnv`, libs/runtime/src/config.ts).",
  },
  { title: 'admission', schema: ADMISSION_ENV, note: '`admissionConfigFromEnv`, apps/admission/src/config.ts.' },
  { title: 'quota', schema: QUOTA_ENV, note: '`quotaConfigFromEnv`, apps/quota/src/config.ts.' },
  { title: 'scheduler', schema: SCHEDULER_ENV, note: '`schedulerConfigFromEnv`, apps/scheduler/src/config.ts.' },
  { title: 'executor', schema: EXECUTOR_ENV, note: '`executorConfigFromEnv` and `simulationConfigFromEnv`, apps/executor/src/config.ts.' },
];

const cell = (s: string | undefined) => (s === undefined || s === '' ? '—' : s.replace(/\|/g, '\\|'));
/** A default: its literal value as code, or its description when it is computed at start. */
const defaultCell = (r: EnvVarDoc) => (r.default !== undefined ? `\`${cell(r.default)}\`` : cell(r.defaultText));

function table(rows: EnvVarDoc[]): string[] {
  return [
    '| variable | type | default | unit | meaning |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| \`${r.name}\` | ${cell(r.type)} | ${defaultCell(r)} | ${cell(r.unit)} | ${cell(r.meaning)} |`),
  ];
}

/** The whole page, as the schemas describe it. */
export function configurationDoc(): string {
  const lines = [
    '# Configuration',
    '',
    `<!-- Generated from the configuration schemas by tools/ops/src/configuration-doc.ts: do not edit; run \`${REGENERATE_COMMAND}\`. -->`,
    '',
    'Each service reads these environment variables once, when it starts, and refuses to start when one is malformed,',
    'with a message naming the variable, what it must be and what it was (e.g. `BATCH_LEASE_TTL must be an integer ≥ 1 (got "abc")`).',
    'A number variable set to an empty string counts as unset.',
    '',
  ];
  for (const s of SECTIONS) lines.push(`## ${s.title}`, '', s.note, '', ...table(describeEnv(s.schema)), '');
  return lines.join('\n');
}

if (require.main === module) {
  const root = join(__dirname, '../../..');
  if (process.argv.includes('--write')) writeFileSync(join(root, CONFIGURATION_DOC), configurationDoc());
  else process.stdout.write(configurationDoc());
}
