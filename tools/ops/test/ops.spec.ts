/**
 * What operators rely on: alert rules pass promtool's checks and unit tests, every alert has
 * a runbook and every runbook an alert, the dashboard queries metrics the services export,
 * and every manifest is well formed with probes and resource requests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metric } from '@batchapi/telemetry';
import { loadAll } from 'js-yaml';

const ROOT = join(__dirname, '../../..');
const RULES = join(ROOT, 'deploy/prometheus/alerts.yaml');
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

type Rule = { alert: string; expr: string; annotations: Record<string, string>; labels: Record<string, string> };
const rules: Rule[] = (loadAll(readFileSync(RULES, 'utf8'))[0] as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

(hasPromtool ? describe : describe.skip)('alert rules (promtool; skipped only where Debian\'s prometheus package is absent)', () => {
  it('pass promtool check rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('pass their promtool unit tests', () => {
    const r = spawnSync('promtool', ['test', 'rules', join(ROOT, 'deploy/prometheus/alerts.test.yaml')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});

describe('runbooks', () => {
  it('every alert has a severity, a summary and a runbook that exists', () => {
    for (const r of rules) {
      expect(r.labels.severity).toMatch(/^(critical|warning)$/);
      expect(r.annotations.summary).toBeTruthy();
      expect(r.annotations.runbook_url).toBe(`docs/runbooks/${r.alert}.md`);
      expect(existsSync(join(ROOT, r.annotations.runbook_url))).toBe(true);
    }
  });

  it('every runbook belongs to an alert and has the four sections', () => {
    const names = new Set(rules.map((r) => r.alert));
    for (const f of readdirSync(join(ROOT, 'docs/runbooks'))) {
      expect(names.has(f.replace(/\.md$/, ''))).toBe(true);
      const text = readFileSync(join(ROOT, 'docs/runbooks', f), 'utf8');
      for (const h of ['## What it means', '## Confirm', '## Mitigate', '## Verify recovery']) expect(text).toContain(h);
    }
  });

  it('every alert unit-tested in alerts.test.yaml', () => {
    const tests = readFileSync(join(ROOT, 'deploy/prometheus/alerts.test.yaml'), 'utf8');
    for (const r of rules) expect(tests).toContain(`alertname: ${r.alert}`);
  });
});

describe('dashboard', () => {
  it('is valid JSON whose BatchAPI queries use metrics the services define', () => {
    const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/batchapi.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const known = new Set<string>(Object.values(Metric));
    for (const p of dash.panels) {
      for (const t of p.targets) {
        for (const m of t.expr.match(/\bbatch_[a-z_]+/g) ?? []) expect(known.has(m.replace(/_(bucket|count|sum)$/, ''))).toBe(true);
      }
    }
  });
});

describe('manifests', () => {
  const files = ['deploy/k8s/batchapi.yaml', 'deploy/etcd/etcd.yaml'];
  it.each(files)('%s: every object is named and every container has probes and resource requests', (file) => {
    const docs = loadAll(readFileSync(join(ROOT, file), 'utf8')) as Array<{ apiVersion: string; kind: string; metadata: { name: string }; spec?: any }>;
    expect(docs.length).toBeGreaterThan(0);
    for (const d of docs) {
      expect(d.apiVersion).toBeTruthy();
      expect(d.kind).toBeTruthy();
      expect(d.metadata.name).toMatch(/^[a-z0-9-]+$/);
      for (const c of d.spec?.template?.spec?.containers ?? []) {
        expect(c.livenessProbe).toBeDefined();
        expect(c.readinessProbe).toBeDefined();
        expect(c.resources.requests.cpu).toBeDefined();
        expect(c.resources.requests.memory).toBeDefined();
      }
    }
  });

  it('runs the scheduler with a standby and the executor on every node', () => {
    const docs = loadAll(readFileSync(join(ROOT, 'deploy/k8s/batchapi.yaml'), 'utf8')) as Array<{ kind: string; metadata: { name: string }; spec?: any }>;
    expect(docs.find((d) => d.metadata.name === 'batchapi-scheduler' && d.kind === 'Deployment')?.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(docs.find((d) => d.metadata.name === 'batchapi-executor')?.kind).toBe('DaemonSet');
  });
});
