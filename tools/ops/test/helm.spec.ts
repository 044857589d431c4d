/**
 * The Helm chart (deploy/helm/batchapi), checked in CI for three value sets — the defaults, GPU nodes with
 * the Kubernetes backend and an external etcd, and high availability (5-member etcd, history, GPU
 * executors on the process backend):
 * - `helm lint --strict` passes and `helm template` renders;
 * - every rendered object validates against the Kubernetes 1.27 API schemas of `kubernetes-models` (and the
 *   Prometheus Operator's for PrometheusRule and PodMonitor), offline, and has no field the models of
 *   @kubernetes/client-node do not know (a misspelt field);
 * - the objects keep the contract with the services: the variables they read, probes, requests, mounts,
 *   selectors, etcd member names, the executor's update strategy;
 * - the NetworkPolicies say what docs/install.md promises; the rendered PrometheusRule passes
 *   `promtool check rules`, and every alert's runbook_url is absolute and names a runbook in docs/;
 * - the chart's README (values table), its copies of the alerts and the dashboard are current, and every
 *   value has a comment;
 * - the etcd TLS material of scripts/etcd-certs.sh with the StatefulSet's TLS flags runs a real etcd that the
 *   services' store client (configured from the chart's BATCH_ETCD_* variables) and the backup job's etcdctl
 *   reach, and that refuses a client without a certificate.
 * Helm comes from `.ci/run` (go install); without it every test here fails, saying how to install it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ClusterConfigSchema, TokensFileSchema } from '@batchapi/api';
import { freePort } from '@batchapi/proc';
import { DEFAULT_PYTHON_ENV_BUILD_TIMEOUT_SECONDS, DEFAULT_PYTHON_ENV_CACHE_BYTES, executorConfigFromEnv as executorConfig } from '@batchapi/executor';
import { configFromEnv } from '@batchapi/runtime';
import { EtcdStore } from '@batchapi/store';
import { dump, load, loadAll } from 'js-yaml';
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as batchV1 from 'kubernetes-models/batch/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as coreV1 from 'kubernetes-models/v1';
import { CHART_DIR, CHART_REGENERATE_COMMAND, chartGenerated, valuesDoc } from '../src/chart-doc';
import { etcdInstalled, installed, read, ROOT } from './fixtures';

/** The Helm release of .ci/run; the Kubernetes version the chart is rendered for (the chart needs ≥ 1.27). */
const HELM_VERSION = 'v3.22.0';
const KUBE_VERSION = '1.30.0';
const NAMESPACE = 'batchapi';
const RELEASE = 'batchapi';

/** helm on PATH, else where `go install` puts it. */
function findHelm(): string | undefined {
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).stdout?.trim();
  const candidates = [
    'helm',
    ...(process.env.GOBIN ? [join(process.env.GOBIN, 'helm')] : []),
    ...(gopath ? [join(gopath, 'bin/helm')] : []),
    join(homedir(), 'go/bin/helm'),
  ];
  return candidates.find((c) => {
    const r = spawnSync(c, ['version', '--short'], { encoding: 'utf8' });
    return !r.error && r.status === 0;
  });
}
const HELM = findHelm();
const MISSING_HELM = `helm is not installed: .ci/run installs it with \`go install helm.sh/helm/v3/cmd/helm@${HELM_VERSION}\` (then put $(go env GOPATH)/bin on PATH)`;
const hasPromtool = installed('promtool', ['--version']);

function helm(args: string[]): string {
  if (!HELM) throw new Error(MISSING_HELM);
  const r = spawnSync(HELM, args, { encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) throw new Error(`helm ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}
/** `helm template` of the chart with these values files; the error text when it refuses. */
function template(valueFiles: string[], set: string[] = []): string {
  return helm([
    'template',
    RELEASE,
    CHART_DIR,
    '--namespace',
    NAMESPACE,
    '--kube-version',
    KUBE_VERSION,
    ...valueFiles.flatMap((f) => ['-f', f]),
    ...set.flatMap((s) => ['--set', s]),
  ]);
}

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
  resources?: any;
  securityContext?: any;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
};

const VALUE_SETS = [
  { name: 'default', files: [] as string[] },
  { name: 'gpu + kubernetes backend + external etcd', files: [`${CHART_DIR}/ci/gpu-kubernetes-external-etcd-values.yaml`] },
  { name: 'high availability (5-member etcd, history, GPU process executors)', files: [`${CHART_DIR}/ci/ha-values.yaml`] },
];
const valuesOf = (files: string[]) => {
  const merge = (a: any, b: any): any =>
    b && typeof b === 'object' && !Array.isArray(b) && a && typeof a === 'object' && !Array.isArray(a)
      ? Object.fromEntries([...new Set([...Object.keys(a), ...Object.keys(b)])].map((k) => [k, k in b ? merge(a[k], b[k]) : a[k]]))
      : b;
  return files.reduce((v, f) => merge(v, load(read(f))), load(read(`${CHART_DIR}/values.yaml`)) as any);
};

const WORKLOADS = ['Deployment', 'DaemonSet', 'StatefulSet'];
const CLUSTER_SCOPED = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'];
const podSpec = (o: Obj): any => (o.kind === 'CronJob' ? o.spec?.jobTemplate?.spec?.template?.spec : o.spec?.template?.spec);
const podLabels = (o: Obj): Record<string, string> =>
  (o.kind === 'CronJob' ? o.spec?.jobTemplate?.spec?.template?.metadata?.labels : o.spec?.template?.metadata?.labels) ?? {};
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
/** A LabelSelector (matchLabels and In/NotIn/Exists/DoesNotExist expressions) against labels. */
const selects = (sel: any, labels: Record<string, string>) =>
  matches(sel?.matchLabels ?? {}, labels) &&
  (sel?.matchExpressions ?? []).every((e: { key: string; operator: string; values?: string[] }) =>
    e.operator === 'In'
      ? (e.values ?? []).includes(labels[e.key])
      : e.operator === 'NotIn'
        ? !(e.values ?? []).includes(labels[e.key])
        : e.operator === 'Exists'
          ? e.key in labels
          : !(e.key in labels),
  );

/** Checks a value against the @kubernetes/client-node model `type`: unknown fields and wrong primitive types. */
function unknownFields(value: unknown, type: string, path: string, out: string[]): string[] {
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
    else value.forEach((v, i) => unknownFields(v, arr[1], `${path}[${i}]`, out));
  } else if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) out.push(`${path}: expected a map`);
    else for (const [k, v] of Object.entries(value)) unknownFields(v, map[1], `${path}.${k}`, out);
  } else {
    const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Array<{ baseName: string; type: string }> }>)[type];
    if (!model?.getAttributeTypeMap) return [...out, `${path}: no model ${type} in @kubernetes/client-node`];
    if (typeof value !== 'object' || Array.isArray(value)) return [...out, `${path}: expected an object (${type})`];
    const attrs = model.getAttributeTypeMap();
    for (const [k, v] of Object.entries(value)) {
      const a = attrs.find((x) => x.baseName === k);
      if (!a) out.push(`${path}.${k}: unknown field of ${type}`);
      else unknownFields(v, a.type, `${path}.${k}`, out);
    }
  }
  return out;
}
/** The @kubernetes/client-node model of a built-in kind (V1Deployment…); undefined for custom resources. */
const clientModelOf = (o: Obj) =>
  o.apiVersion.includes('.') && !o.apiVersion.startsWith('rbac.') && !o.apiVersion.startsWith('networking.') ? undefined : `V1${o.kind}`;

type Model = new (o: never) => { validate(): void };
/** The schema models of the kinds the chart renders, by `apiVersion kind`. */
const MODELS: Record<string, Model> = Object.fromEntries(
  (
    [
      ['v1', coreV1],
      ['apps/v1', appsV1],
      ['batch/v1', batchV1],
      ['policy/v1', policyV1],
      ['networking.k8s.io/v1', networkingV1],
      ['rbac.authorization.k8s.io/v1', rbacV1],
      ['monitoring.coreos.com/v1', monitoringV1],
    ] as Array<[string, Record<string, unknown>]>
  ).flatMap(([apiVersion, mod]) => Object.entries(mod).map(([kind, model]) => [`${apiVersion} ${kind}`, model as Model])),
);

/** Validates against the JSON schemas of kubernetes-models (required fields, types, formats such as quantities). */
function schemaErrors(o: Obj): string[] {
  const Model = MODELS[`${o.apiVersion} ${o.kind}`];
  if (!Model) return [`${o.kind}/${o.metadata.name}: no schema for ${o.apiVersion} ${o.kind}`];
  try {
    new Model(o as never).validate();
    return [];
  } catch (e) {
    return [`${o.kind}/${o.metadata.name}: ${(e as Error).message}`];
  }
}

describe('helm', () => {
  it(`is installed (${HELM_VERSION}, from .ci/run)`, () => {
    // a go-installed helm says only its minor version (v3.22), a release binary the full one
    expect(helm(['version', '--short'])).toMatch(/^v3\.\d+/);
  });
});

describe('the chart', () => {
  const values = read(`${CHART_DIR}/values.yaml`);

  it('passes helm lint --strict for every value set', () => {
    for (const s of VALUE_SETS) helm(['lint', CHART_DIR, '--strict', '--kube-version', KUBE_VERSION, ...s.files.flatMap((f) => ['-f', f])]);
  });

  it('documents every value with a `# --` comment', () => {
    const { rows, undocumented } = valuesDoc(values);
    expect(undocumented).toEqual([]);
    expect(rows.length).toBeGreaterThan(60);
  });

  it('its README, alert rules and dashboard copies are current', () => {
    for (const [path, text] of Object.entries(chartGenerated(ROOT))) {
      const onDisk = existsSync(join(ROOT, path)) ? read(path) : '';
      if (onDisk !== text) throw new Error(`${path} is out of date; regenerate it with \`${CHART_REGENERATE_COMMAND}\``);
    }
  });

  it('the values doc finds undocumented leaves and skips keys inside lists', () => {
    const text = ['# -- documented', 'a: 1', 'b:', '  c: 2', '  # -- a list', '  d:', '    - e: 3', '# -- whole map', 'f:', '  g: 4'].join('\n');
    expect(valuesDoc(text)).toEqual({
      rows: [
        { key: 'a', type: 'int', default: '1', description: 'documented' },
        { key: 'b.d', type: 'list', default: '[{"e":3}]', description: 'a list' },
        { key: 'f', type: 'object', default: '{"g":4}', description: 'whole map' },
      ],
      undocumented: ['b.c'],
    });
  });

  it('the schema checks catch a misspelt field, a missing required field and a malformed quantity', () => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x' },
      spec: { selector: {}, template: { spec: { containers: [{ image: 'i', readinesProbe: {}, resources: { requests: { cpu: 'lots' } } }] } } },
    };
    expect(unknownFields(bad, 'V1Deployment', 'x', [])).toEqual(['x.spec.template.spec.containers[0].readinesProbe: unknown field of V1Container']);
    const [err] = schemaErrors(bad);
    expect(err).toContain('containers/0 must have required property name');
    expect(err).toContain('requests/cpu must match format "quantity"');
  });

  it.each([
    ['an even etcd member count', ['etcd.replicas=4'], 'etcd.replicas must be odd'],
    ['a relative docs base URL', ['docs.baseUrl=docs'], 'docs.baseUrl must be an absolute'],
    ['task pods in the control plane namespace', ['executor.mode=kubernetes', `executor.kubernetes.taskNamespace=${NAMESPACE}`], 'taskNamespace must differ'],
    ['an external etcd without endpoints', ['etcd.bundled=false'], 'etcd.external.endpoints is required'],
    ['history without a URL', ['history.enabled=true'], 'history.url (or history.existingSecret) is required'],
    // (60 000 + 30 000) ms / 1000 + 10 s = 100 s at least
    ['an executor termination grace shorter than its drain and kill graces', ['executor.terminationGracePeriodSeconds=99'], 'must be at least 100'],
    ['pip with no index and no wheel directory', ['executor.python.noIndex=true'], 'executor.python.noIndex needs executor.python.findLinks'],
  ])('refuses %s with a message naming the value', (_, set, message) => {
    expect(() => template([], set)).toThrow(message);
  });
});

describe("helm template: the executor's pip settings (jobs' python environments)", () => {
  const executorEnv = (set: string[]) => {
    const objs = (loadAll(template([], set)) as Obj[]).filter(Boolean);
    const ds = objs.find((o) => o.kind === 'DaemonSet' && o.metadata.name === `${RELEASE}-executor`)!;
    const env = (ds.spec.template.spec.containers as Container[])[0].env ?? [];
    return Object.fromEntries(env.filter((e) => /^BATCH_(PIP|PYTHON_ENV)_/.test(e.name)).map((e) => [e.name, e.value]));
  };

  it.each<[string, string[], Record<string, string>]>([
    // the defaults are the executor's own (DEFAULT_PYTHON_ENV_CACHE_BYTES 5 GiB, build timeout 900 s): pip's own index, wheels only
    [
      'the defaults',
      [],
      {
        BATCH_PIP_NO_INDEX: 'false',
        BATCH_PIP_ALLOW_SOURCE_BUILDS: 'false',
        BATCH_PYTHON_ENV_CACHE_BYTES: String(DEFAULT_PYTHON_ENV_CACHE_BYTES),
        BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS: String(DEFAULT_PYTHON_ENV_BUILD_TIMEOUT_SECONDS),
      },
    ],
    [
      'an internal index, source builds, 20 GiB and 30 minutes',
      [
        'executor.python.indexUrl=https://pypi.internal/simple',
        'executor.python.allowSourceBuilds=true',
        'executor.python.cacheBytes=21474836480',
        'executor.python.buildTimeoutSeconds=1800',
      ],
      {
        BATCH_PIP_INDEX_URL: 'https://pypi.internal/simple',
        BATCH_PIP_NO_INDEX: 'false',
        BATCH_PIP_ALLOW_SOURCE_BUILDS: 'true',
        BATCH_PYTHON_ENV_CACHE_BYTES: '21474836480',
        BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS: '1800',
      },
    ],
    [
      'offline nodes: a wheel directory and no index',
      ['executor.python.findLinks=/var/lib/batchapi/wheels', 'executor.python.noIndex=true'],
      {
        BATCH_PIP_FIND_LINKS: '/var/lib/batchapi/wheels',
        BATCH_PIP_NO_INDEX: 'true',
        BATCH_PIP_ALLOW_SOURCE_BUILDS: 'false',
        BATCH_PYTHON_ENV_CACHE_BYTES: String(DEFAULT_PYTHON_ENV_CACHE_BYTES),
        BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS: String(DEFAULT_PYTHON_ENV_BUILD_TIMEOUT_SECONDS),
      },
    ],
  ])('%s render into the executor env, as values the executor accepts', (_name, set, want) => {
    if (!HELM) throw new Error(MISSING_HELM);
    const env = executorEnv(set);
    expect(env).toEqual(want);
    // the executor's own parser takes them and gives back the same settings
    const config = executorConfig({ ...env, BATCH_NODE_NAME: 'n', BATCH_DATA_DIR: '/tmp/x' });
    expect(config.pythonEnvCacheBytes).toBe(Number(want.BATCH_PYTHON_ENV_CACHE_BYTES));
    expect(config.pythonEnvBuildTimeoutSeconds).toBe(Number(want.BATCH_PYTHON_ENV_BUILD_TIMEOUT_SECONDS));
    expect(config.pip).toEqual({
      ...(want.BATCH_PIP_INDEX_URL ? { indexUrl: want.BATCH_PIP_INDEX_URL } : {}),
      ...(want.BATCH_PIP_FIND_LINKS ? { findLinks: want.BATCH_PIP_FIND_LINKS } : {}),
      ...(want.BATCH_PIP_NO_INDEX === 'true' ? { noIndex: true } : {}),
      ...(want.BATCH_PIP_ALLOW_SOURCE_BUILDS === 'true' ? { allowSourceBuilds: true } : {}),
    });
  });
});

describe.each(VALUE_SETS)('helm template: $name', ({ files }) => {
  const v = valuesOf(files);
  let objs: Obj[] = [];
  const find = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const workloads = () => objs.filter((o) => WORKLOADS.includes(o.kind));
  const executors = () => workloads().filter((o) => /^executor/.test(o.metadata.labels?.['app.kubernetes.io/component'] ?? ''));

  beforeAll(() => {
    if (!HELM) return;
    objs = (loadAll(template(files)) as Obj[]).filter(Boolean);
  });

  it('renders named objects, each in the release namespace (or the task namespace)', () => {
    if (!HELM) throw new Error(MISSING_HELM);
    expect(objs.length).toBeGreaterThan(15);
    const allowed = [NAMESPACE, v.executor.kubernetes.taskNamespace, v.history.networkPolicy.namespace];
    for (const o of objs) {
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
      if (CLUSTER_SCOPED.includes(o.kind)) expect(o.metadata.namespace).toBeUndefined();
      else expect({ o: `${o.kind}/${o.metadata.name}`, ok: allowed.includes(o.metadata.namespace) }).toEqual({ o: `${o.kind}/${o.metadata.name}`, ok: true });
    }
    const keys = objs.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
    expect(keys.length).toBe(new Set(keys).size);
  });

  it('every object validates against the Kubernetes API schemas (kubernetes-models, offline)', () => {
    expect(objs.flatMap(schemaErrors)).toEqual([]);
  });

  it('built-in kinds have no field the client models do not know', () => {
    const errors: string[] = [];
    for (const o of objs) {
      const model = clientModelOf(o);
      if (model) unknownFields(o, model, `${o.kind}/${o.metadata.name}`, errors);
    }
    expect(errors).toEqual([]);
  });

  it('every container has probes on its own ports and cpu and memory requests', () => {
    for (const o of objs.filter((x) => [...WORKLOADS, 'CronJob'].includes(x.kind))) {
      for (const c of podSpec(o).containers as Container[]) {
        const where = `${o.kind}/${o.metadata.name}/${c.name}`;
        expect({ where, cpu: !!c.resources?.requests?.cpu, memory: !!c.resources?.requests?.memory }).toEqual({ where, cpu: true, memory: true });
        if (o.kind === 'CronJob') continue;
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          expect({ where, probe: !!probe?.httpGet }).toEqual({ where, probe: true });
          expect({ where, known: (c.ports ?? []).some((p) => p.name === probe.httpGet.port) }).toEqual({ where, known: true });
        }
      }
    }
  });

  it('workload selectors match their pods; Services, PodDisruptionBudgets and NetworkPolicies select pods', () => {
    for (const w of workloads()) expect(matches(w.spec.selector.matchLabels, podLabels(w))).toBe(true);
    for (const s of objs.filter((o) => o.kind === 'Service')) {
      const target = workloads().find((w) => matches(s.spec.selector, podLabels(w)));
      expect({ service: s.metadata.name, selects: !!target }).toEqual({ service: s.metadata.name, selects: true });
      const ports = (podSpec(target!).containers as Container[]).flatMap((c) => c.ports ?? []);
      for (const p of s.spec.ports)
        expect({ service: s.metadata.name, ok: ports.some((cp) => cp.name === (p.targetPort ?? p.name)) }).toEqual({ service: s.metadata.name, ok: true });
    }
    for (const p of objs.filter((o) => o.kind === 'PodDisruptionBudget')) expect(workloads().some((w) => selects(p.spec.selector, podLabels(w)))).toBe(true);
    for (const np of objs.filter((o) => o.kind === 'NetworkPolicy' && o.metadata.namespace === NAMESPACE))
      expect({ policy: np.metadata.name, selects: workloads().some((w) => selects(np.spec.podSelector, podLabels(w))) }).toEqual({
        policy: np.metadata.name,
        selects: true,
      });
  });

  it('mounts name volumes; every ConfigMap and Secret is rendered or one the values say the operator makes', () => {
    const external = new Set<string>(
      [
        v.auth.tokens.length ? '' : v.auth.existingTokensSecret || `${RELEASE}-tokens`,
        v.auth.existingServiceTokenSecret,
        v.etcd.bundled && v.etcd.tls.enabled ? v.etcd.tls.serverSecret : '',
        v.etcd.bundled && v.etcd.tls.enabled ? v.etcd.tls.clientSecret : '',
        v.etcd.bundled ? '' : v.etcd.external.clientSecret,
      ].filter(Boolean),
    );
    for (const o of objs.filter((x) => [...WORKLOADS, 'CronJob'].includes(x.kind))) {
      const spec = podSpec(o);
      const volumes = new Map<string, any>((spec.volumes ?? []).map((x: any) => [x.name, x]));
      for (const t of o.spec.volumeClaimTemplates ?? []) volumes.set(t.metadata.name, {});
      for (const c of spec.containers as Container[])
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name) ? m.name : `${o.metadata.name}: no volume ${m.name}`).toBe(m.name);
      for (const x of volumes.values()) {
        if (x.configMap) expect(find('ConfigMap', x.configMap.name)).toBeDefined();
        if (x.secret) expect(find('Secret', x.secret.secretName) || external.has(x.secret.secretName) ? 'ok' : `no Secret ${x.secret.secretName}`).toBe('ok');
        if (x.persistentVolumeClaim) expect(find('PersistentVolumeClaim', x.persistentVolumeClaim.claimName)).toBeDefined();
      }
    }
  });

  it('each service runs its image and command and reads the variables it needs, from mounted files', () => {
    const endpoints = v.etcd.bundled
      ? Array.from(
          { length: v.etcd.replicas },
          (_, i) => `${v.etcd.tls.enabled ? 'https' : 'http'}://${RELEASE}-etcd-${i}.${RELEASE}-etcd.${NAMESPACE}.svc:2379`,
        )
      : v.etcd.external.endpoints;
    for (const svc of ['admission', 'quota', 'scheduler', 'executor']) {
      const o = workloads().find((w) => w.metadata.name === `${RELEASE}-${svc}`)!;
      expect(o).toBeDefined();
      const c = (podSpec(o).containers as Container[])[0];
      const env = new Map((c.env ?? []).map((e) => [e.name, e]));
      expect(env.size).toBe(c.env!.length);
      // a privileged process-backend executor first hands its cgroup v2 controllers over (deploy/docker/executor-entrypoint.sh)
      const delegates = svc === 'executor' && v.executor.mode === 'process' && v.executor.process.privileged;
      expect(c.command).toEqual([...(delegates ? ['batchapi-executor-entrypoint'] : []), 'node', `apps/${svc}/dist/main.js`]);
      expect(c.image).toMatch(svc === 'executor' ? /\/executor:0\.1\.0$/ : /\/services:0\.1\.0$/);
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      const required = [
        'BATCH_ETCD_ENDPOINTS',
        'BATCH_PORT',
        'BATCH_HOST',
        'BATCH_LEASE_TTL',
        'BATCH_LOG_LEVEL',
        ...(
          {
            admission: ['BATCH_TOKENS_FILE', 'BATCH_SERVICE_TOKEN_FILE'],
            quota: ['BATCH_CLUSTER_CONFIG', 'BATCH_SERVICE_TOKEN_FILE', 'BATCH_STEP_API_URL'],
            scheduler: ['BATCH_SERVICE_TOKEN_FILE', 'BATCH_RPC_PORT'],
            executor: ['BATCH_NODE_NAME', 'BATCH_DATA_DIR', 'BATCH_SERVICE_TOKEN_FILE', 'BATCH_EXECUTOR_BACKEND'],
          } as Record<string, string[]>
        )[svc],
        ...(v.history.enabled && ['admission', 'quota'].includes(svc) ? ['BATCH_HISTORY_URL'] : []),
        ...(v.etcd.bundled && !v.etcd.tls.enabled ? [] : ['BATCH_ETCD_CA', 'BATCH_ETCD_CERT', 'BATCH_ETCD_KEY']),
      ];
      expect({ svc, missing: required.filter((n) => !env.has(n)) }).toEqual({ svc, missing: [] });
      expect(env.get('BATCH_ETCD_ENDPOINTS')!.value!.split(',')).toEqual(endpoints);
      expect(env.get('BATCH_PORT')?.value).toBe(String(c.ports![0].containerPort));
      // a workflow step's tasks read other steps' outputs through the admission Service
      if (svc === 'quota') expect(env.get('BATCH_STEP_API_URL')?.value).toBe(`http://${RELEASE}-admission.${NAMESPACE}.svc:${v.admission.service.port}`);
      for (const n of [
        'BATCH_TOKENS_FILE',
        'BATCH_CLUSTER_CONFIG',
        'BATCH_DATA_DIR',
        'BATCH_SERVICE_TOKEN_FILE',
        'BATCH_ETCD_CA',
        'BATCH_ETCD_CERT',
        'BATCH_ETCD_KEY',
      ]) {
        const path = env.get(n)?.value;
        if (path)
          expect({ n, mounted: (c.volumeMounts ?? []).some((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`)) }).toEqual({ n, mounted: true });
      }
      if (svc !== 'executor' || v.executor.mode === 'kubernetes') {
        expect({ svc, nonRoot: podSpec(o).securityContext.runAsNonRoot, ro: c.securityContext.readOnlyRootFilesystem }).toEqual({
          svc,
          nonRoot: true,
          ro: true,
        });
      }
    }
  });

  it('every BATCH_* variable the chart sets is one the code reads', () => {
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
      workloads()
        .flatMap((o) => (podSpec(o).containers as Container[]).flatMap((c) => (c.env ?? []).map((e) => e.name)))
        .filter((n) => n.startsWith('BATCH_')),
    );
    expect([...set].filter((n) => !code.includes(n))).toEqual([]);
  });

  it('the cluster config and the tokens file are ones the services accept', () => {
    expect(ClusterConfigSchema.safeParse(JSON.parse(find('ConfigMap', `${RELEASE}-cluster`)!.data!['cluster.json'])).success).toBe(true);
    const tokens = find('Secret', `${RELEASE}-tokens`);
    if (v.auth.tokens.length) expect(TokensFileSchema.safeParse(JSON.parse(tokens!.stringData!['tokens.json'])).success).toBe(true);
    else expect(tokens).toBeUndefined();
  });

  it('executors are replaced only when their pod is deleted (after draining the node), one per node', () => {
    expect(executors().length).toBe(1 + (v.executor.gpu.enabled ? 1 : 0));
    for (const e of executors()) {
      if (e.kind === 'DaemonSet') expect(e.spec.updateStrategy).toEqual({ type: 'OnDelete' });
      else expect(e.spec.strategy).toEqual({ type: 'Recreate' });
    }
    const gpu = executors().find((e) => e.metadata.name.endsWith('-gpu'));
    const cpu = executors().find((e) => !e.metadata.name.endsWith('-gpu'))!;
    if (!gpu) return;
    // a node with the GPU label is refused by the CPU executor: never two executors for one node
    const terms = podSpec(cpu).affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    expect(terms.every((t: any) => !selects({ matchExpressions: t.matchExpressions }, { ...v.executor.nodeSelector, ...v.executor.gpu.nodeSelector }))).toBe(
      true,
    );
    const spec = podSpec(gpu);
    expect(spec.nodeSelector).toEqual(v.executor.gpu.nodeSelector);
    expect(spec.tolerations).toEqual(v.executor.gpu.tolerations);
    if (v.executor.mode === 'process') {
      expect(spec.runtimeClassName).toBe(v.executor.gpu.runtimeClassName);
      expect(spec.containers[0].resources.limits['nvidia.com/gpu']).toBe(String(v.executor.gpu.count));
      expect(spec.containers[0].image).toMatch(/\/executor-gpu:/);
    }
  });

  it('process executors are privileged (cgroup v2 delegation); Kubernetes-backend executors have RBAC only in the task namespace', () => {
    for (const e of executors()) {
      const c = podSpec(e).containers[0] as Container;
      if (v.executor.mode === 'process') {
        expect(c.securityContext.privileged).toBe(v.executor.process.privileged);
        continue;
      }
      expect(podSpec(e).serviceAccountName).toBe(`${RELEASE}-executor`);
      expect(c.env!.find((x) => x.name === 'BATCH_K8S_NAMESPACE')?.value).toBe(v.executor.kubernetes.taskNamespace);
    }
    if (v.executor.mode !== 'kubernetes') {
      expect(objs.filter((o) => ['Role', 'ClusterRole'].includes(o.kind))).toEqual([]);
      return;
    }
    const role = find('Role', `${RELEASE}-executor`)!;
    expect(role.metadata.namespace).toBe(v.executor.kubernetes.taskNamespace);
    expect(find('Namespace', v.executor.kubernetes.taskNamespace)?.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('baseline');
  });

  it('NetworkPolicies: only admission reaches the scheduler RPC, only BatchAPI pods reach etcd, other namespaces (task pods) reach nothing but the API', () => {
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const podsOf = (component: string) => workloads().filter((w) => podLabels(w)['app.kubernetes.io/component'] === component);
    /** The peers that may reach `port` of a component's pods, as label sets of the release's pods, or 'anyone'. */
    const reachers = (component: string, port: string) => {
      const target = podLabels(podsOf(component)[0]);
      const rules = policies.filter((p) => p.metadata.namespace === NAMESPACE && selects(p.spec.podSelector, target)).flatMap((p) => p.spec.ingress ?? []);
      const open = rules.filter((r: any) => !r.ports || r.ports.some((x: any) => x.port === port));
      if (open.some((r: any) => !r.from)) return 'anyone';
      return workloads()
        .filter((w) => open.some((r: any) => r.from.some((f: any) => !f.namespaceSelector && f.podSelector && selects(f.podSelector, podLabels(w)))))
        .map((w) => podLabels(w)['app.kubernetes.io/component'])
        .sort();
    };
    expect(reachers('scheduler', 'rpc')).toEqual(['admission']);
    expect(reachers('quota', 'http')).toEqual([]);
    if (v.etcd.bundled) {
      const clients = reachers('etcd', 'client') as string[];
      expect(clients.filter((c) => !['admission', 'quota', 'scheduler', 'executor', 'executor-gpu', 'etcd'].includes(c))).toEqual([]);
      expect(clients).toEqual(expect.arrayContaining(['admission', 'quota', 'scheduler', 'executor']));
    }
    // every control-plane pod is under an ingress policy (so a task pod, in another namespace, matches no rule)
    for (const w of workloads())
      expect({ w: w.metadata.name, covered: policies.some((p) => p.metadata.namespace === NAMESPACE && selects(p.spec.podSelector, podLabels(w))) }).toEqual({
        w: w.metadata.name,
        covered: true,
      });
    // and no rule admits other namespaces, except the monitoring stack (and the API's own callers)
    const monitoring = { matchLabels: v.networkPolicies.monitoringNamespaceLabels };
    const apiFrom = JSON.stringify(v.networkPolicies.apiFrom);
    for (const p of policies.filter((x) => x.metadata.namespace === NAMESPACE))
      for (const r of p.spec.ingress ?? [])
        for (const f of r.from ?? [])
          if (f.namespaceSelector && JSON.stringify(f.namespaceSelector) !== JSON.stringify(monitoring))
            expect(apiFrom).toContain(JSON.stringify(f.namespaceSelector));
    if (v.executor.mode === 'kubernetes') {
      const tasks = policies.find((p) => p.metadata.namespace === v.executor.kubernetes.taskNamespace)!;
      expect(tasks.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(tasks.spec.ingress).toBeUndefined();
    }
    if (v.history.enabled && v.history.networkPolicy.enabled) {
      const pg = policies.find((p) => p.metadata.namespace === v.history.networkPolicy.namespace)!;
      expect(pg.spec.ingress[0].from[0].podSelector.matchExpressions[1].values).toEqual(['admission', 'quota']);
    }
  });

  it('etcd: members on distinct hosts, TLS for peers and clients, an initial cluster naming exactly them', () => {
    const sts = find('StatefulSet', `${RELEASE}-etcd`);
    if (!v.etcd.bundled) {
      expect(sts).toBeUndefined();
      return;
    }
    expect(sts!.spec.replicas).toBe(v.etcd.replicas);
    expect(find('Service', sts!.spec.serviceName)?.spec.clusterIP).toBe('None');
    const anti = podSpec(sts!).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0];
    expect(anti.topologyKey).toBe('kubernetes.io/hostname');
    const args: string[] = podSpec(sts!).containers[0].args;
    const flag = (n: string) => args.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3);
    expect(flag('initial-cluster')?.split(',')).toEqual(
      Array.from({ length: v.etcd.replicas }, (_, i) => `${RELEASE}-etcd-${i}=https://${RELEASE}-etcd-${i}.${RELEASE}-etcd.${NAMESPACE}.svc:2380`),
    );
    for (const f of ['client-cert-auth', 'peer-client-cert-auth']) expect(flag(f)).toBe('true');
    expect(flag('quota-backend-bytes')).toBe(String(v.etcd.quotaBackendBytes));
    expect(find('PodDisruptionBudget', `${RELEASE}-etcd`)?.spec.maxUnavailable).toBe(1);
    const etcdHelp = spawnSync('etcd', ['--help'], { encoding: 'utf8' });
    if (!etcdHelp.error) {
      // every flag is one etcd knows (the local etcd binary's help)
      const help = `${etcdHelp.stdout}${etcdHelp.stderr}`;
      expect(args.map((a) => a.split('=')[0]).filter((f) => !help.includes(`${f} `) && !help.includes(`${f}\n`) && !help.includes(`${f}=`))).toEqual([]);
    }
  });

  it('the PrometheusRule passes promtool check rules; every runbook_url is absolute and names a runbook in docs/', () => {
    if (!hasPromtool) throw new Error('promtool is not installed (Debian package `prometheus`; .ci/run installs it)');
    const rule = objs.find((o) => o.kind === 'PrometheusRule')!;
    const dir = mkdtempSync(join(tmpdir(), 'helm-rules-'));
    try {
      writeFileSync(join(dir, 'rules.yaml'), dump(rule.spec));
      const r = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' });
      const alerts = rule.spec.groups.flatMap((g: any) => g.rules);
      expect(`${r.stdout}${r.stderr}`).toContain(`SUCCESS: ${alerts.length} rules found`);
      const base = String(v.docs.baseUrl).replace(/\/$/, '');
      for (const a of alerts.filter((x: any) => x.alert)) {
        const url: string = a.annotations.runbook_url;
        expect(url).toMatch(/^https?:\/\//);
        expect(url.startsWith(`${base}/`)).toBe(true);
        expect({ alert: a.alert, exists: existsSync(join(ROOT, 'docs', url.slice(base.length + 1))) }).toEqual({ alert: a.alert, exists: true });
      }
      const sourceAlerts = (load(read('deploy/prometheus/alerts.yaml')) as any).groups.flatMap((g: any) => g.rules);
      expect(alerts.length).toBe(sourceAlerts.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard ConfigMap carries the dashboard with the sidecar label; PodMonitors keep job = the app label', () => {
    const cm = find('ConfigMap', `${RELEASE}-dashboard`)!;
    expect(cm.metadata.labels).toEqual(expect.objectContaining(v.monitoring.dashboard.labels));
    expect(JSON.parse(cm.data!['batchapi.json']).uid).toBe('batchapi');
    for (const pm of objs.filter((o) => o.kind === 'PodMonitor')) {
      expect(pm.spec.jobLabel).toBe('app');
      expect(workloads().some((w) => selects(pm.spec.selector, podLabels(w)))).toBe(true);
    }
  });
});

// ------------------------------------------------- the executor image's cgroup v2 delegation entry point

describe('deploy/docker/executor-entrypoint.sh (cgroup v2 delegation; a cgroup v2 tree with controllers cannot be made here, so it runs on a fake one)', () => {
  const script = join(ROOT, 'deploy/docker/executor-entrypoint.sh');
  /** A fake cgroup root with these processes and controllers; runs the script in it; returns what it wrote. */
  function run(selfCgroup: string) {
    const dir = mkdtempSync(join(tmpdir(), 'cgroup-entry-'));
    try {
      mkdirSync(join(dir, 'root'));
      writeFileSync(join(dir, 'root/cgroup.controllers'), 'cpu io memory pids\n');
      writeFileSync(join(dir, 'root/cgroup.procs'), '1\n7\n');
      writeFileSync(join(dir, 'root/cgroup.subtree_control'), '');
      writeFileSync(join(dir, 'self'), `${selfCgroup}\n`);
      const r = spawnSync('sh', [script, 'sh', '-c', 'echo started: $0', 'executor'], {
        encoding: 'utf8',
        env: { ...process.env, CGROUP_ROOT: join(dir, 'root'), SELF_CGROUP: join(dir, 'self') },
      });
      const readIf = (p: string) => (existsSync(join(dir, 'root', p)) ? readFileSync(join(dir, 'root', p), 'utf8') : undefined);
      return {
        status: r.status,
        stdout: r.stdout,
        rootControl: readIf('cgroup.subtree_control'),
        attemptsControl: readIf('batchapi/cgroup.subtree_control'),
        moved: readIf('executor/cgroup.procs'),
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('in its own cgroup namespace: moves every process into the leaf `executor`, enables every controller for the root and for `batchapi`, then runs the command', () => {
    expect(run('0::/')).toEqual({
      status: 0,
      stdout: 'started: executor\n',
      rootControl: '+cpu +io +memory +pids\n',
      attemptsControl: '+cpu +io +memory +pids\n',
      moved: '1\n7\n',
    });
  });

  it("in the host's cgroup namespace: touches nothing, runs the command", () => {
    expect(run('0::/kubepods.slice/pod-x')).toEqual({
      status: 0,
      stdout: 'started: executor\n',
      rootControl: '',
      attemptsControl: undefined,
      moved: undefined,
    });
  });
});

// ------------------------------------------------------------------- the bundled etcd's TLS, for real

describe("the bundled etcd's TLS (scripts/etcd-certs.sh, the StatefulSet's flags, the services' client settings) on a real etcd", () => {
  const hasEtcd = etcdInstalled();
  let dir = '';
  let etcd: ChildProcess | undefined;
  let endpoint = '';
  let objs: Obj[] = [];
  afterAll(() => {
    etcd?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeAll(async () => {
    if (!HELM || !hasEtcd) return;
    objs = (loadAll(template([])) as Obj[]).filter(Boolean);
    dir = mkdtempSync(join(tmpdir(), 'helm-etcd-tls-'));
    const made = spawnSync('bash', [join(ROOT, CHART_DIR, 'scripts/etcd-certs.sh'), RELEASE, NAMESPACE, join(dir, 'pki')], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`etcd-certs.sh failed: ${made.stderr}`);
    // the two Secrets as the kubelet would mount them (keys ca.crt, tls.crt, tls.key)
    for (const [secret, cert] of [
      ['server', 'server'],
      ['client', 'client'],
    ]) {
      mkdirSync(join(dir, secret));
      copyFileSync(join(dir, 'pki/ca.crt'), join(dir, secret, 'ca.crt'));
      copyFileSync(join(dir, `pki/${cert}.crt`), join(dir, secret, 'tls.crt'));
      copyFileSync(join(dir, `pki/${cert}.key`), join(dir, secret, 'tls.key'));
    }
    // the StatefulSet's own TLS flags, with the Secret's mount path pointing at the server files and loopback URLs
    const sts = objs.find((o) => o.kind === 'StatefulSet')!;
    const args = (podSpec(sts).containers[0].args as string[]).filter((a) =>
      /^--(client-cert-auth|peer-client-cert-auth|trusted-ca-file|cert-file|key-file|peer-)/.test(a),
    );
    const mount = (podSpec(sts).containers[0].volumeMounts as Array<{ name: string; mountPath: string }>).find((m) => m.name === 'tls')!.mountPath;
    const [client, peer] = [await freePort(), await freePort()];
    endpoint = `https://127.0.0.1:${client}`;
    etcd = spawn(
      'etcd',
      [
        '--name=m0',
        `--data-dir=${join(dir, 'data')}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=https://127.0.0.1:${peer}`,
        `--initial-advertise-peer-urls=https://127.0.0.1:${peer}`,
        `--initial-cluster=m0=https://127.0.0.1:${peer}`,
        ...args.map((a) => a.replace(mount, join(dir, 'server'))),
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 100; i++) {
      if (etcdctlTls(['endpoint', 'health']).status === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('etcd with the chart TLS flags did not become healthy');
  });
  /** etcdctl with the backup CronJob's TLS arguments, the client Secret mounted where the CronJob mounts it. */
  const etcdctlTls = (args: string[], withCert = true) => {
    const cron = objs.find((o) => o.kind === 'CronJob')!;
    const c = podSpec(cron).containers[0] as Container;
    const mount = c.volumeMounts!.find((m) => m.name === 'etcd-client')!.mountPath;
    const tlsArgs = c
      .args!.filter((a) => /^--(cacert|cert|key)=/.test(a) && (withCert || a.startsWith('--cacert')))
      .map((a) => a.replace(mount, join(dir, 'client')));
    return spawnSync('etcdctl', [`--endpoints=${endpoint}`, '--command-timeout=5s', ...tlsArgs, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ETCDCTL_API: '3' },
    });
  };

  it('the services connect with the client certificate the chart mounts (BATCH_ETCD_CA/CERT/KEY); a client without one is refused', async () => {
    if (!HELM) throw new Error(MISSING_HELM);
    if (!hasEtcd) throw new Error('etcd/etcdctl are not installed (Debian packages etcd-server, etcd-client; .ci/run installs them)');
    const scheduler = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === `${RELEASE}-scheduler`)!;
    const c = podSpec(scheduler).containers[0] as Container;
    const mount = c.volumeMounts!.find((m) => m.name === 'etcd-client')!.mountPath;
    const env = Object.fromEntries(c.env!.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!.replace(mount, join(dir, 'client'))]));
    const cfg = configFromEnv({ ...env, BATCH_ETCD_ENDPOINTS: endpoint });
    expect(cfg.etcdTls).toEqual({ caFile: join(dir, 'client/ca.crt'), certFile: join(dir, 'client/tls.crt'), keyFile: join(dir, 'client/tls.key') });
    const store = new EtcdStore({
      endpoints: cfg.etcdEndpoints,
      tls: { ca: readFileSync(cfg.etcdTls!.caFile), cert: readFileSync(cfg.etcdTls!.certFile!), key: readFileSync(cfg.etcdTls!.keyFile!) },
    });
    try {
      expect((await store.txn([], [{ put: '/batch/tls-check', value: { ok: true } }])).succeeded).toBe(true);
      expect((await store.get<{ ok: boolean }>('/batch/tls-check'))?.value).toEqual({ ok: true });
    } finally {
      await store.close();
    }
    // the same call, endpoint and CA as the backup job's, only without the client certificate
    const refused = etcdctlTls(['get', '/batch/tls-check'], false);
    expect(refused.status).not.toBe(0);
  });

  it("the backup CronJob's etcdctl arguments save a snapshot over TLS", () => {
    if (!HELM) throw new Error(MISSING_HELM);
    if (!hasEtcd) throw new Error('etcd/etcdctl are not installed');
    const saved = etcdctlTls(['snapshot', 'save', join(dir, 'snap.db')]);
    expect(`${saved.status} ${saved.stderr}`).toMatch(/^0 /);
    expect(existsSync(join(dir, 'snap.db'))).toBe(true);
  });
});
