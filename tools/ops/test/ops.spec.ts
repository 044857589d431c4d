/**
 * What operators rely on, checked in CI:
 * - alert rules pass `promtool check rules` and their unit tests, and every alert has a firing and a
 *   not-firing case; the Prometheus config and every dashboard query parse;
 * - every alert has a runbook with the five sections and every runbook an alert, indexed in
 *   docs/operations.md;
 * - every `batch_*` metric the rules and the dashboard query is exported by the services, or listed in
 *   docs/operations.md as expected-but-not-exported (and nothing stays listed there once exported);
 * - every manifest parses, is well formed against the Kubernetes API models of @kubernetes/client-node
 *   (unknown fields, wrong types), and keeps the contract with the services (env vars they read,
 *   probes, requests, mounts, selectors, ports, etcd member names);
 * - the etcd snapshot save / restore and compact / defrag commands of docs/operations.md work on a
 *   real etcd member.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ClusterConfigSchema, TokensFileSchema } from '@batchapi/api';
import { dump, load, loadAll } from 'js-yaml';

const ROOT = join(__dirname, '../../..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const RULES = 'deploy/prometheus/alerts.yaml';
const RULE_TESTS = 'deploy/prometheus/alerts.test.yaml';
const PROM_CONFIG = 'deploy/prometheus/prometheus.yaml';
const DASHBOARD = 'deploy/grafana/batchapi.json';
const OPERATIONS = 'docs/operations.md';
/** Kinds without a namespace. */
const CLUSTER_SCOPED = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'];
const RUNBOOKS = 'docs/runbooks';
const MANIFESTS = [
  ...['deploy/k8s', 'deploy/etcd'].flatMap((d) =>
    readdirSync(join(ROOT, d))
      .filter((f) => /\.ya?ml$/.test(f))
      .map((f) => `${d}/${f}`),
  ),
  'deploy/prometheus/podmonitors.yaml',
];
const SERVICES = ['admission', 'quota', 'scheduler', 'executor'] as const;

const has = (bin: string, args: string[]) => {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return !r.error && r.status === 0;
};
const hasPromtool = has('promtool', ['--version']);
const hasEtcd = has('etcd', ['--version']) && has('etcdctl', ['version']);
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

// ------------------------------------------------------------------------------------------- manifests

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
};
type Container = {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: any }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  livenessProbe?: any;
  readinessProbe?: any;
  startupProbe?: any;
  resources?: any;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
};
const docs: Array<{ file: string; obj: Obj }> = MANIFESTS.flatMap((file) => (loadAll(read(file)) as Obj[]).filter(Boolean).map((obj) => ({ file, obj })));
const objs = docs.map((d) => d.obj);
const find = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const WORKLOADS = ['Deployment', 'DaemonSet', 'StatefulSet'];
const podSpec = (o: Obj): any => (o.kind === 'CronJob' ? o.spec?.jobTemplate?.spec?.template?.spec : o.spec?.template?.spec);
const podLabels = (o: Obj): Record<string, string> =>
  (o.kind === 'CronJob' ? o.spec?.jobTemplate?.spec?.template?.metadata?.labels : o.spec?.template?.metadata?.labels) ?? {};
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Checks a value against the @kubernetes/client-node model `type`: unknown fields and wrong primitive types. */
function schemaErrors(value: unknown, type: string, path: string, out: string[]): string[] {
  if (value === null || value === undefined || type === 'any' || type === 'object') return out;
  const arr = type.match(/^Array<(.+)>$/);
  const map = type.match(/^\{ \[key: string\]: (.+); \}$/);
  if (type === 'string' || type === 'Date') {
    if (typeof value !== 'string') out.push(`${path}: expected a string, got ${JSON.stringify(value)}`);
  } else if (type === 'number') {
    if (typeof value !== 'number') out.push(`${path}: expected a number, got ${JSON.stringify(value)}`);
  } else if (type === 'boolean') {
    if (typeof value !== 'boolean') out.push(`${path}: expected a boolean, got ${JSON.stringify(value)}`);
  } else if (type === 'IntOrString') {
    if (typeof value !== 'string' && typeof value !== 'number') out.push(`${path}: expected an int or a string`);
  } else if (arr) {
    if (!Array.isArray(value)) out.push(`${path}: expected a list`);
    else value.forEach((v, i) => schemaErrors(v, arr[1], `${path}[${i}]`, out));
  } else if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) out.push(`${path}: expected a map`);
    else for (const [k, v] of Object.entries(value)) schemaErrors(v, map[1], `${path}.${k}`, out);
  } else {
    const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Array<{ baseName: string; type: string }> }>)[type];
    if (!model?.getAttributeTypeMap) {
      out.push(`${path}: no model ${type} in @kubernetes/client-node`);
      return out;
    }
    if (typeof value !== 'object' || Array.isArray(value)) {
      out.push(`${path}: expected an object (${type})`);
      return out;
    }
    const attrs = model.getAttributeTypeMap();
    for (const [k, v] of Object.entries(value)) {
      const a = attrs.find((x) => x.baseName === k);
      if (!a) out.push(`${path}.${k}: unknown field of ${type}`);
      else schemaErrors(v, a.type, `${path}.${k}`, out);
    }
  }
  return out;
}
const modelOf = (o: Obj) =>
  /^([a-z.]+\/)?v\d+$/.test(o.apiVersion) && !o.apiVersion.includes('.') ? `${o.apiVersion.split('/').pop()!.toUpperCase()}${o.kind}` : undefined;

describe('manifests', () => {
  it.each(MANIFESTS)('%s parses into named, namespaced objects', (file) => {
    const mine = docs.filter((d) => d.file === file).map((d) => d.obj);
    expect(mine.length).toBeGreaterThan(0);
    for (const o of mine) {
      expect(o.apiVersion).toMatch(/^([a-z0-9.-]+\/)?v\d+(alpha\d+|beta\d+)?$/);
      expect(o.kind).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      if (!CLUSTER_SCOPED.includes(o.kind))
        expect({ kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace }).toEqual({
          kind: o.kind,
          name: o.metadata.name,
          namespace: 'batchapi',
        });
    }
  });

  it('built-in kinds match the Kubernetes API models (no unknown fields, right types)', () => {
    const errors: string[] = [];
    for (const { file, obj } of docs) {
      const model = modelOf(obj);
      if (!model) continue; // custom resources (PodMonitor)
      schemaErrors(obj, model, `${file}:${obj.kind}/${obj.metadata.name}`, errors);
    }
    expect(errors).toEqual([]);
  });

  it('the schema check does catch a misspelt field', () => {
    expect(
      schemaErrors(
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'x' },
          spec: { template: { spec: { containers: [{ name: 'c', readinesProbe: {} }] } } },
        },
        'V1Deployment',
        'x',
        [],
      ),
    ).toEqual(['x.spec.template.spec.containers[0].readinesProbe: unknown field of V1Container']);
  });

  it('every long-running container has liveness and readiness probes on its own ports; every container has cpu and memory requests', () => {
    for (const o of objs.filter((x) => [...WORKLOADS, 'CronJob'].includes(x.kind))) {
      for (const c of podSpec(o).containers as Container[]) {
        const where = `${o.kind}/${o.metadata.name}/${c.name}`;
        expect({ where, cpu: !!c.resources?.requests?.cpu, memory: !!c.resources?.requests?.memory }).toEqual({ where, cpu: true, memory: true });
        if (o.kind === 'CronJob') continue;
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          expect({ where, probe: !!probe?.httpGet }).toEqual({ where, probe: true });
          const port = probe.httpGet.port;
          expect({ where, port, known: typeof port === 'number' || (c.ports ?? []).some((p) => p.name === port) }).toEqual({ where, port, known: true });
        }
      }
    }
  });

  it('workload selectors match their pod labels; Services and PodDisruptionBudgets select a workload', () => {
    const workloads = objs.filter((o) => WORKLOADS.includes(o.kind));
    for (const w of workloads) expect(matches(w.spec.selector.matchLabels, podLabels(w))).toBe(true);
    for (const s of objs.filter((o) => o.kind === 'Service')) {
      const target = workloads.find((w) => matches(s.spec.selector, podLabels(w)));
      expect({ service: s.metadata.name, selects: !!target }).toEqual({ service: s.metadata.name, selects: true });
      const ports = (podSpec(target!).containers as Container[]).flatMap((c) => c.ports ?? []);
      for (const p of s.spec.ports) {
        const tp = p.targetPort ?? p.port;
        expect({ service: s.metadata.name, tp, ok: ports.some((cp) => cp.name === tp || cp.containerPort === tp) }).toEqual({
          service: s.metadata.name,
          tp,
          ok: true,
        });
      }
    }
    for (const p of objs.filter((o) => o.kind === 'PodDisruptionBudget'))
      expect(workloads.some((w) => matches(p.spec.selector.matchLabels, podLabels(w)))).toBe(true);
  });

  it('volumes mount what exists: every mount names a volume, every ConfigMap, Secret and claim is defined', () => {
    for (const o of objs.filter((x) => [...WORKLOADS, 'CronJob'].includes(x.kind))) {
      const spec = podSpec(o);
      const volumes = new Map<string, any>((spec.volumes ?? []).map((v: any) => [v.name, v]));
      for (const t of o.spec.volumeClaimTemplates ?? []) volumes.set(t.metadata.name, { claimTemplate: true });
      for (const c of spec.containers as Container[])
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name) ? m.name : `${o.metadata.name}: no volume ${m.name}`).toBe(m.name);
      for (const v of volumes.values()) {
        if (v.configMap) expect(find('ConfigMap', v.configMap.name)).toBeDefined();
        if (v.secret) expect(find('Secret', v.secret.secretName)).toBeDefined();
        if (v.persistentVolumeClaim) expect(find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName)).toBeDefined();
      }
    }
  });

  it('scraped pods announce a port they listen on', () => {
    for (const o of objs.filter((x) => WORKLOADS.includes(x.kind))) {
      const ann = o.spec.template.metadata.annotations ?? {};
      expect({ workload: o.metadata.name, scrape: ann['prometheus.io/scrape'] }).toEqual({ workload: o.metadata.name, scrape: 'true' });
      const ports = (podSpec(o).containers as Container[]).flatMap((c) => c.ports ?? []).map((p) => String(p.containerPort));
      expect(ports).toContain(ann['prometheus.io/port']);
    }
  });

  describe.each(SERVICES)('the %s service', (svc) => {
    const o = objs.find((x) => WORKLOADS.includes(x.kind) && x.metadata.name === `batchapi-${svc}`)!;
    const c = () => (podSpec(o).containers as Container[])[0];
    const env = () => new Map((c().env ?? []).map((e) => [e.name, e]));

    it('runs the release image with the command the build produces', () => {
      expect(o).toBeDefined();
      expect(o.kind).toBe(svc === 'executor' ? 'DaemonSet' : 'Deployment');
      if (svc === 'scheduler') expect(o.spec.replicas).toBeGreaterThanOrEqual(2);
      expect(c().image).toBe('batchapi:0.1.0');
      expect(c().command).toEqual(['node', `apps/${svc}/dist/main.js`]);
      expect(c().livenessProbe.httpGet.path).toBe('/healthz');
      expect(c().readinessProbe.httpGet.path).toBe('/readyz');
    });

    it('sets the environment the service reads, each variable once', () => {
      const names = (c().env ?? []).map((e) => e.name);
      expect(new Set(names).size).toBe(names.length);
      const required = [
        'BATCH_ETCD_ENDPOINTS',
        'BATCH_PORT',
        'BATCH_HOST',
        'BATCH_LEASE_TTL',
        'BATCH_LOG_LEVEL',
        ...(
          {
            admission: ['BATCH_TOKENS_FILE', 'BATCH_SERVICE_TOKEN_FILE'],
            quota: ['BATCH_CLUSTER_CONFIG'],
            scheduler: ['BATCH_SERVICE_TOKEN_FILE'],
            executor: ['BATCH_NODE_NAME', 'BATCH_DATA_DIR', 'BATCH_SERVICE_TOKEN_FILE'],
          } as const
        )[svc],
      ];
      for (const n of required) expect(names).toContain(n);
      expect(env().get('BATCH_PORT')?.value).toBe(String(c().ports![0].containerPort));
      const host = env().get('BATCH_HOST')!;
      expect(host.value === '0.0.0.0' || host.valueFrom?.fieldRef?.fieldPath === 'status.podIP').toBe(true);
      if (svc === 'executor') expect(env().get('BATCH_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
      // files the service reads sit on a mounted volume
      for (const n of ['BATCH_TOKENS_FILE', 'BATCH_CLUSTER_CONFIG', 'BATCH_DATA_DIR', 'BATCH_SERVICE_TOKEN_FILE']) {
        const path = env().get(n)?.value;
        if (path) expect((c().volumeMounts ?? []).some((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))).toBe(true);
      }
    });

    it('reaches every etcd member by its stable name', () => {
      const sts = find('StatefulSet', 'batchapi-etcd')!;
      const members = Array.from({ length: sts.spec.replicas }, (_, i) => `http://${sts.metadata.name}-${i}.${sts.spec.serviceName}.batchapi.svc:2379`);
      expect(env().get('BATCH_ETCD_ENDPOINTS')?.value?.split(',')).toEqual(members);
    });
  });

  it('every BATCH_* variable the manifests set is one the code reads', () => {
    const sources: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'node_modules' && e.name !== 'dist') walk(p);
        } else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts')) sources.push(readFileSync(p, 'utf8'));
      }
    };
    for (const top of ['apps', 'libs']) walk(join(ROOT, top));
    const code = sources.join('\n');
    const set = new Set(
      objs
        .filter((o) => WORKLOADS.includes(o.kind))
        .flatMap((o) => (podSpec(o).containers as Container[]).flatMap((c) => (c.env ?? []).map((e) => e.name)))
        .filter((n) => n.startsWith('BATCH_')),
    );
    expect([...set].filter((n) => !code.includes(n))).toEqual([]);
  });

  it('the ConfigMap and the Secret hold files the services accept', () => {
    const cluster = JSON.parse(find('ConfigMap', 'batchapi-cluster')!.data!['cluster.json']);
    expect(ClusterConfigSchema.safeParse(cluster).success).toBe(true);
    const tokens = JSON.parse(find('Secret', 'batchapi-tokens')!.stringData!['tokens.json']) as { tokens: Array<{ sha256: string }> };
    // the shipped placeholder must be replaced (admission refuses it); with a digest in its place the file is valid
    expect(TokensFileSchema.safeParse(tokens).success).toBe(false);
    for (const t of tokens.tokens) t.sha256 = 'a'.repeat(64);
    expect(TokensFileSchema.safeParse(tokens).success).toBe(true);
  });

  it('etcd: 3 members on distinct hosts behind a headless Service, with an initial cluster naming exactly them', () => {
    const sts = find('StatefulSet', 'batchapi-etcd')!;
    expect(sts.spec.replicas).toBe(3);
    const headless = find('Service', sts.spec.serviceName)!;
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const anti = sts.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0];
    expect(anti.topologyKey).toBe('kubernetes.io/hostname');
    expect(matches(anti.labelSelector.matchLabels, podLabels(sts))).toBe(true);
    const args: string[] = sts.spec.template.spec.containers[0].args;
    const flag = (n: string) => args.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3);
    expect(flag('initial-cluster')?.split(',')).toEqual(
      Array.from({ length: 3 }, (_, i) => `batchapi-etcd-${i}=http://batchapi-etcd-${i}.batchapi-etcd.batchapi.svc:2380`),
    );
    expect(flag('name')).toBe('$(POD_NAME)');
    expect(flag('data-dir')?.startsWith(`${sts.spec.template.spec.containers[0].volumeMounts[0].mountPath}/`)).toBe(true);
    expect(find('PodDisruptionBudget', 'batchapi-etcd')?.spec.maxUnavailable).toBe(1);
  });

  (hasEtcd ? it : it.skip)('etcd knows every flag the StatefulSet passes (checked against the local etcd binary)', () => {
    const help = `${spawnSync('etcd', ['--help'], { encoding: 'utf8' }).stdout}`;
    const args: string[] = find('StatefulSet', 'batchapi-etcd')!.spec.template.spec.containers[0].args;
    expect(args.map((a) => a.split('=')[0]).filter((f) => !help.includes(`${f} `) && !help.includes(`${f}\n`) && !help.includes(`${f}=`))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------- etcd backup and restore

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

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
    const restoreTool = has('etcdutl', ['version']) ? 'etcdutl' : 'etcdctl';
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
