/**
 * What operators rely on, checked in CI:
 * - alert rules pass `promtool check rules` and their unit tests, and every alert has a firing and a
 *   not-firing case; the Prometheus config and every dashboard query parse;
 * - every alert has a runbook with the five sections and every runbook an alert, indexed in
 *   docs/operations.md;
 * - every `batch_*` metric the rules and the dashboard query is exported by the services, or listed in
 *   docs/operations.md as expected-but-not-exported (and nothing stays listed there once exported);
 * - (the Helm chart's objects are checked by tools/ops/test/helm.spec.ts;)
 * - the etcd snapshot save / restore and compact / defrag commands of docs/operations.md work on a
 *   real etcd member.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@batchapi/proc';
import { dump, load } from 'js-yaml';
import { etcdInstalled, installed, read, ROOT } from './fixtures';

const RULES = 'deploy/prometheus/alerts.yaml';
const RULE_TESTS = 'deploy/prometheus/alerts.test.yaml';
const PROM_CONFIG = 'deploy/prometheus/prometheus.yaml';
const DASHBOARD = 'deploy/grafana/batchapi.json';
const OPERATIONS = 'docs/operations.md';
const RUNBOOKS = 'docs/runbooks';

const hasPromtool = installed('promtool', ['--version']);
const hasEtcd = etcdInstalled();
if (!hasPromtool) console.warn('promtool is absent (Debian package `prometheus`): the promtool checks are skipped');
if (!hasEtcd) console.warn('etcd/etcdctl are absent (Debian packages etcd-server, etcd-client): the backup/restore check is skipped');

type Rule = { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> };
const rules: Rule[] = (load(read(RULES)) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const alertNames = rules.map((r) => r.alert);

function promtool(args: string[]): string {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: ROOT });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`promtool ${args.join(' ')} failed:\n${out}`);
  return out;
}

/** Metric names the services register (prom-client `name:` literals or `Metric.*` constants), read from source. */
function exportedMetrics(): Set<string> {
  const constants = new Map<string, string>();
  for (const m of read('libs/telemetry/src/metric-names.ts').matchAll(/(\w+):\s*'(batch_[a-z0-9_]+)'/g)) constants.set(m[1], m[2]);
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'dist') walk(p);
        continue;
      }
      if (!e.name.endsWith('.ts') || e.name.endsWith('.spec.ts') || e.name.endsWith('.d.ts')) continue;
      const src = readFileSync(p, 'utf8');
      for (const m of src.matchAll(/name:\s*'(batch_[a-z0-9_]+)'/g)) names.add(m[1]);
      for (const m of src.matchAll(/name:\s*Metric\.(\w+)/g)) if (constants.has(m[1])) names.add(constants.get(m[1])!);
    }
  };
  for (const top of ['apps', 'libs']) for (const p of readdirSync(join(ROOT, top))) if (existsSync(join(ROOT, top, p, 'src'))) walk(join(ROOT, top, p, 'src'));
  return names;
}
const baseName = (m: string) => m.replace(/_(bucket|count|sum)$/, '');
const metricsIn = (expr: string) => [...expr.matchAll(/\b(batch_[a-z0-9_]+)/g)].map((m) => baseName(m[1]));

/** The section of a markdown text under `heading` (up to the next heading of the same or a higher level; lines in code blocks are not headings). */
function section(md: string, heading: string): string {
  const lines = md.split('\n');
  let fenced = false;
  const isHeading = lines.map((l) => {
    if (/^\s*```/.test(l)) fenced = !fenced;
    return !fenced && /^#+ /.test(l);
  });
  const start = lines.findIndex((l, i) => isHeading[i] && l.trim() === heading);
  if (start < 0) return '';
  const level = heading.match(/^#+/)![0].length;
  const end = lines.findIndex((l, i) => i > start && isHeading[i] && l.match(/^#+/)![0].length <= level);
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

describe('alert rules', () => {
  it('each alert is named once, has a severity, a summary, a description and its runbook path', () => {
    expect(new Set(alertNames).size).toBe(alertNames.length);
    for (const r of rules) {
      expect({ alert: r.alert, severity: r.labels?.severity }).toEqual({ alert: r.alert, severity: expect.stringMatching(/^(critical|warning)$/) });
      expect(r.annotations.summary).toBeTruthy();
      expect(r.annotations.description).toBeTruthy();
      expect(r.annotations.runbook_url).toBe(`${RUNBOOKS}/${r.alert}.md`);
      expect(existsSync(join(ROOT, r.annotations.runbook_url))).toBe(true);
    }
  });

  it('covers the alerts issue 8 asks for', () => {
    for (const a of [
      'BatchSchedulerNoLeader',
      'BatchSchedulingStalled',
      'BatchQueuePendingTooLong',
      'BatchEtcdSlowFsync',
      'BatchEtcdRequestErrors',
      'BatchEtcdNoLeader',
      'BatchExecutorLeaseRenewFailures',
      'BatchNodeQuarantineSpike',
      'BatchAdmission5xxHigh',
      'BatchQueueStarved',
      'BatchEtcdDbNearQuota',
    ])
      expect(alertNames).toContain(a);
  });

  it('every alert has a unit test where it fires and one where it must not', () => {
    const tests = (load(read(RULE_TESTS)) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }> }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    const missing: string[] = [];
    for (const a of alertNames) {
      const mine = cases.filter((c) => c.alertname === a);
      if (!mine.some((c) => (c.exp_alerts ?? []).length > 0)) missing.push(`${a}: no firing case`);
      if (!mine.some((c) => (c.exp_alerts ?? []).length === 0)) missing.push(`${a}: no not-firing case`);
    }
    expect(missing).toEqual([]);
    for (const c of cases) expect(alertNames).toContain(c.alertname);
  });

  (hasPromtool ? it : it.skip)('pass promtool check rules', () => {
    expect(promtool(['check', 'rules', RULES])).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  (hasPromtool ? it : it.skip)('pass their promtool unit tests', () => {
    expect(promtool(['test', 'rules', RULE_TESTS])).toContain('SUCCESS');
  });

  (hasPromtool ? it : it.skip)('the Prometheus config passes promtool check config', () => {
    // Debian's promtool is built without Kubernetes service discovery: check a copy in which each
    // kubernetes_sd_configs is swapped for a static target (relabelings, rule files and the rest stay).
    const dir = mkdtempSync(join(tmpdir(), 'ops-prom-'));
    try {
      const cfg = load(read(PROM_CONFIG)) as { rule_files: string[]; scrape_configs: Array<Record<string, unknown>> };
      cfg.rule_files = cfg.rule_files.map((f) => join(ROOT, 'deploy/prometheus', f));
      const kubernetesSd = spawnSync('promtool', ['check', 'config', join(ROOT, PROM_CONFIG)], { encoding: 'utf8' });
      if (`${kubernetesSd.stdout}${kubernetesSd.stderr}`.includes('field kubernetes_sd_configs not found')) {
        for (const sc of cfg.scrape_configs) {
          expect(sc.kubernetes_sd_configs).toBeDefined();
          delete sc.kubernetes_sd_configs;
          sc.static_configs = [{ targets: ['127.0.0.1:9'] }];
        }
      } else {
        expect(kubernetesSd.status).toBe(0);
      }
      writeFileSync(join(dir, 'prometheus.yaml'), dump(cfg));
      expect(promtool(['check', 'config', join(dir, 'prometheus.yaml')])).toContain('SUCCESS');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('runbooks', () => {
  const files = readdirSync(join(ROOT, RUNBOOKS)).filter((f) => f.endsWith('.md'));

  it('every runbook belongs to an alert', () => {
    expect(files.map((f) => f.replace(/\.md$/, '')).filter((n) => !alertNames.includes(n))).toEqual([]);
  });

  it.each(alertNames)('%s: says what it means, its impact, how to confirm, mitigate and verify recovery', (alert) => {
    const text = readFileSync(join(ROOT, RUNBOOKS, `${alert}.md`), 'utf8');
    expect(text.split('\n')[0]).toBe(`# ${alert}`);
    for (const h of ['## What it means', '## Impact', '## Confirm', '## Mitigate', '## Verify recovery']) {
      expect({ alert, heading: h, body: section(text, h).trim().length > 0 }).toEqual({ alert, heading: h, body: true });
    }
    // confirming is done with exact commands, in a code block
    expect(section(text, '## Confirm')).toMatch(/```(bash|promql)\n[\s\S]+?```/);
    // a runbook's links to other runbooks point at runbooks that exist
    for (const m of text.matchAll(/\]\(([A-Za-z0-9]+)\.md\)/g)) expect(files).toContain(`${m[1]}.md`);
  });

  (hasPromtool ? it : it.skip)('every PromQL query in the runbooks and docs/operations.md parses (promtool)', () => {
    const texts = [...files.map((f) => readFileSync(join(ROOT, RUNBOOKS, f), 'utf8')), read(OPERATIONS)];
    const exprs = texts.flatMap((t) => [...t.matchAll(/promtool query instant \$PROM '([^']+)'/g)].map((m) => m[1]));
    expect(exprs.length).toBeGreaterThan(alertNames.length);
    const dir = mkdtempSync(join(tmpdir(), 'ops-runbooks-'));
    try {
      writeFileSync(join(dir, 'q.yaml'), dump({ groups: [{ name: 'runbooks', rules: exprs.map((expr, i) => ({ record: `runbook:query_${i}`, expr })) }] }));
      expect(promtool(['check', 'rules', join(dir, 'q.yaml')])).toContain(`SUCCESS: ${exprs.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('docs/operations.md indexes every alert with its runbook and severity', () => {
    const index = section(read(OPERATIONS), '## Alerts and runbooks');
    for (const r of rules) expect(index).toContain(`| ${r.alert} | ${r.labels.severity} | [runbook](runbooks/${r.alert}.md) |`);
  });
});

describe('metrics', () => {
  const exported = exportedMetrics();
  const ops = read(OPERATIONS);
  const expectedSection = section(ops, '### Expected, not exported yet');
  const exportedSection = section(ops, '### Exported');
  // the metric names in the first column of the table
  const planned = new Set([...expectedSection.matchAll(/^\| `(batch_[a-z0-9_]+)/gm)].map((m) => m[1]));

  it('the services register the metrics the foundation promised', () => {
    for (const m of [
      'batch_http_requests_total',
      'batch_scheduler_is_leader',
      'batch_scheduler_last_cycle_timestamp_seconds',
      'batch_scheduler_pending_tasks',
      'batch_executor_lease_renew_failures_total',
    ]) {
      expect(exported).toContain(m);
    }
  });

  it('every batch_* metric in the alert rules and the dashboard is exported or listed as expected', () => {
    const dash = JSON.parse(read(DASHBOARD)) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    const used = new Set([...rules.flatMap((r) => metricsIn(r.expr)), ...dash.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricsIn(t.expr)))]);
    expect([...used].filter((m) => !exported.has(m) && !planned.has(m))).toEqual([]);
  });

  it('the expected-not-exported list holds only metrics nobody exports yet (move them to "Exported" once they are)', () => {
    expect([...planned].filter((m) => exported.has(m))).toEqual([]);
  });

  it('docs/operations.md lists every exported metric', () => {
    expect([...exported].filter((m) => !new RegExp(`\`${m}[{\`]`).test(exportedSection))).toEqual([]);
  });
});

describe('dashboard', () => {
  const dash = JSON.parse(read(DASHBOARD)) as {
    uid: string;
    title: string;
    schemaVersion: number;
    templating: { list: Array<{ name: string; type: string }> };
    panels: Array<{
      id: number;
      type: string;
      title: string;
      gridPos: { x: number; y: number; w: number; h: number };
      datasource?: { uid: string };
      targets?: Array<{ refId: string; expr: string }>;
    }>;
  };

  it('is a Grafana dashboard with a data source variable and unique panel ids laid out on the 24-column grid', () => {
    expect(dash.uid).toBe('batchapi');
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dash.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
    const cells = new Set<string>();
    for (const p of dash.panels) {
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`) ? `${p.title} overlaps at ${x},${y}` : 'ok').toBe('ok');
          cells.add(`${x},${y}`);
        }
      if (p.type === 'row') continue;
      expect(p.datasource?.uid).toBe('${datasource}');
      expect(p.targets?.length).toBeGreaterThan(0);
    }
  });

  it('shows what issue 8 asks for', () => {
    const exprs = dash.panels
      .flatMap((p) => p.targets ?? [])
      .map((t) => t.expr)
      .join('\n');
    for (const m of [
      'batch_http_requests_total',
      'batch_http_request_duration_seconds_bucket',
      'batch_scheduler_is_leader',
      'batch_scheduler_cycle_duration_seconds_bucket',
      'batch_scheduler_placements_total',
      'batch_scheduler_binds_failed_total',
      'batch_executor_running_attempts',
      'batch_executor_attempt_outcomes_total',
      'etcd_server_has_leader',
      'etcd_mvcc_db_total_size_in_bytes',
      'etcd_disk_wal_fsync_duration_seconds_bucket',
    ])
      expect(exprs).toContain(m);
  });

  (hasPromtool ? it : it.skip)('every query is valid PromQL (checked by promtool as recording rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-dash-'));
    try {
      const records = dash.panels.flatMap((p) =>
        (p.targets ?? []).map((t) => ({
          record: `dashboard:panel_${p.id}:${t.refId}`,
          expr: t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$queue', '.*'),
        })),
      );
      writeFileSync(join(dir, 'dash.yaml'), dump({ groups: [{ name: 'dashboard', rules: records }] }));
      expect(promtool(['check', 'rules', join(dir, 'dash.yaml')])).toContain(`SUCCESS: ${records.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------- etcd backup and restore

/** Starts a one-member etcd on free loopback ports; `peer` is given when a restored data dir was made for it. */
async function startMember(name: string, dataDir: string, peer?: number): Promise<{ proc: ChildProcess; endpoint: string }> {
  const client = await freePort();
  const peerUrl = `http://127.0.0.1:${peer ?? (await freePort())}`;
  const proc = spawn(
    'etcd',
    [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${client}`,
      `--advertise-client-urls=http://127.0.0.1:${client}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${name}=${peerUrl}`,
      '--initial-cluster-token=batchapi',
    ],
    { stdio: 'ignore' },
  );
  const endpoint = `http://127.0.0.1:${client}`;
  for (let i = 0; i < 100; i++) {
    if (etcdctl(endpoint, ['endpoint', 'health']).status === 0) return { proc, endpoint };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`etcd in ${dataDir} did not become healthy`);
}
const etcdctl = (endpoint: string, args: string[]) =>
  spawnSync('etcdctl', [`--endpoints=${endpoint}`, '--command-timeout=5s', ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });

(hasEtcd ? describe : describe.skip)('etcd backup and restore (the commands of docs/operations.md)', () => {
  let dir = '';
  const running: ChildProcess[] = [];
  afterAll(() => {
    for (const p of running) p.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('snapshot save, restore into a fresh data dir, and the keys are back; compact and defrag run', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ops-etcd-'));
    const a = await startMember('batchapi-etcd-0', join(dir, 'a'));
    running.push(a.proc);
    for (let i = 0; i < 20; i++) expect(etcdctl(a.endpoint, ['put', `/batch/jobs/j${i}`, JSON.stringify({ id: `j${i}` })]).status).toBe(0);

    // docs: "etcdctl --endpoints=$ETCD_ONE snapshot save <file>"
    const snap = join(dir, 'etcd-snapshot.db');
    const saved = etcdctl(a.endpoint, ['snapshot', 'save', snap]);
    expect(saved.status).toBe(0);
    expect(spawnSync('etcdctl', ['snapshot', 'status', snap, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } }).status).toBe(0);

    // docs: compaction and defragmentation
    const status = JSON.parse(etcdctl(a.endpoint, ['endpoint', 'status', '-w', 'json']).stdout) as Array<{ Status: { header: { revision: number } } }>;
    expect(etcdctl(a.endpoint, ['compact', String(status[0].Status.header.revision)]).status).toBe(0);
    expect(etcdctl(a.endpoint, ['defrag']).status).toBe(0);
    a.proc.kill('SIGKILL');

    // docs: "etcdutl snapshot restore" (etcd 3.5; `etcdctl snapshot restore` with the same flags on 3.4)
    const peer = await freePort();
    const restoreTool = installed('etcdutl', ['version']) ? 'etcdutl' : 'etcdctl';
    const restored = spawnSync(
      restoreTool,
      [
        'snapshot',
        'restore',
        snap,
        '--name=batchapi-etcd-0',
        `--data-dir=${join(dir, 'b', 'data')}`,
        `--initial-cluster=batchapi-etcd-0=http://127.0.0.1:${peer}`,
        '--initial-cluster-token=batchapi',
        `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      ],
      { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } },
    );
    expect(`${restored.status} ${restored.stderr}`).toMatch(/^0 /);

    const b = await startMember('batchapi-etcd-0', join(dir, 'b', 'data'), peer);
    running.push(b.proc);
    const got = etcdctl(b.endpoint, ['get', '/batch/jobs/', '--prefix', '--keys-only']);
    expect(got.stdout.split('\n').filter(Boolean)).toHaveLength(20);
    expect(etcdctl(b.endpoint, ['get', '/batch/jobs/j7', '--print-value-only']).stdout.trim()).toBe('{"id":"j7"}');
    b.proc.kill('SIGKILL');
  });
});
