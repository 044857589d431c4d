/**
 * Topology-aware placement (as Kueue's TAS and Slurm's topology/tree): nodes carry their place
 * in a tree of levels from labels (block > rack > host, the host being the node itself), and
 * work may name a level:
 *   required  — every task of the placement in one domain of that level, or none placed (a gang
 *               waits, and why-pending names the level and the roomiest domain);
 *   preferred — as few domains of that level as fit; when none fits whole, the lowest level above
 *               where one domain does, and within it as few domains of the level as possible.
 * Either way the domain is the best fit: the one with the least room left after the work, at
 * the lowest level that fits, so big gangs find whole racks free and small ones fill holes.
 * The Domain extension point: pure, over the ranked candidates and their room now.
 */
import { GPU_MILLI, type ResourceVector } from '@batchapi/api';
import type { DomainCandidate, DomainChoice, DomainPlugin, ScorePlugin } from '../../framework/extension-points';
import type { Status } from '../../framework/status';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { tasksThatFit } from '../resource-fit';

/** One level of the topology tree. */
export interface TopologyLevel {
  /** What jobs name, e.g. `rack`. */
  name: string;
  /** The node label whose value names the node's domain at this level; absent: the node itself (a host / NVLink domain). */
  label?: string;
}

/** Where the default levels' labels live. */
export const TOPOLOGY_LABEL_PREFIX = 'topology.batchapi.io/';

/** The default tree, top first: `block` and `rack` from `topology.batchapi.io/{block,rack}`, then `host` (the node). */
export const DEFAULT_TOPOLOGY_LEVELS: readonly TopologyLevel[] = [
  { name: 'block', label: `${TOPOLOGY_LABEL_PREFIX}block` },
  { name: 'rack', label: `${TOPOLOGY_LABEL_PREFIX}rack` },
  { name: 'host' },
];

/** A topology setting that cannot be used: `field` names the setting, `problem` completes "<field> …". */
export class TopologyLevelsError extends Error {
  readonly code = 'invalid_topology_levels';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}`);
    this.name = 'TopologyLevelsError';
  }
}

const LEVEL_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;

/**
 * Parses a level order, top first: `name=label` entries separated by commas; the last may be a
 * bare name, the node itself (e.g. `block=topology.batchapi.io/block,rack=topology.batchapi.io/rack,host`).
 * Throws `TopologyLevelsError` naming `field`.
 */
export function parseTopologyLevels(text: string, field = 'BATCH_TOPOLOGY_LEVELS'): TopologyLevel[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new TopologyLevelsError(field, 'names no level; e.g. "rack=topology.batchapi.io/rack,host"');
  const seen = new Set<string>();
  return entries.map((e, i) => {
    const [name, label, ...more] = e.split('=').map((x) => x.trim());
    if (!LEVEL_NAME.test(name) || name.length > 63)
      throw new TopologyLevelsError(field, `names "${name}", which is not a level name (lower-case letters, digits and "-", at most 63)`);
    if (seen.has(name)) throw new TopologyLevelsError(field, `names level "${name}" twice`);
    seen.add(name);
    if (more.length) throw new TopologyLevelsError(field, `has "${e}", with more than one "="`);
    if (label === undefined) {
      if (i !== entries.length - 1) throw new TopologyLevelsError(field, `gives level "${name}" no label, but only the last level may be the node itself`);
      return { name };
    }
    if (!LABEL_KEY.test(label) || label.length > 253)
      throw new TopologyLevelsError(field, `gives level "${name}" the label "${label}", which is not a label key`);
    return { name, label };
  });
}

/** Tasks of `need` that fit on a node now: its free room and, for GPUs, its free devices. */
export function tasksOnNode(need: ResourceVector, free: ResourceVector, devices: Record<string, number>, gpuCount: number): number {
  let n = tasksThatFit(need, free);
  const share = need.gpu ?? 0;
  if (share <= 0 || n === 0) return n;
  let slots = 0;
  if (share >= GPU_MILLI) {
    for (let d = 0; d < gpuCount; d++) if (!devices[d]) slots++;
    n = Math.min(n, Math.floor(slots / Math.ceil(share / GPU_MILLI)));
  } else {
    for (let d = 0; d < gpuCount; d++) slots += Math.floor((GPU_MILLI - (devices[d] ?? 0)) / share);
    n = Math.min(n, slots);
  }
  return n;
}

/** The node's domain at level `i`: the labels' values from the top down to `i` (a rack name may repeat across blocks); undefined when it lacks level `i`'s label. */
export function domainOf(levels: readonly TopologyLevel[], node: NodeSnapshot, i: number): string | undefined {
  const own = levels[i].label === undefined ? node.name : node.labels[levels[i].label!];
  if (own === undefined) return undefined;
  const path: string[] = [];
  for (let k = 0; k < i; k++) path.push(levels[k].label === undefined ? node.name : (node.labels[levels[k].label!] ?? ''));
  path.push(own);
  return path.join('/');
}

interface Domain {
  key: string;
  /** Candidate indices in rank order. */
  members: number[];
  /** Tasks of the work the domain takes now. */
  room: number;
}

/** The domains of level `i` among `members`, in the order their best-ranked node comes; nodes without the level's label are left out. */
function domainsAt(levels: readonly TopologyLevel[], candidates: readonly DomainCandidate[], members: readonly number[], i: number): Domain[] {
  const byKey = new Map<string, Domain>();
  for (const m of members) {
    const key = domainOf(levels, candidates[m].node, i);
    if (key === undefined) continue;
    let d = byKey.get(key);
    if (!d) byKey.set(key, (d = { key, members: [], room: 0 }));
    d.members.push(m);
    d.room += candidates[m].fit;
  }
  return [...byKey.values()];
}

/** Best fit: the domain with the least room left after `want` tasks (ties: the best-ranked node, then the name); undefined when none takes them all. */
function bestFit(domains: readonly Domain[], want: number): Domain | undefined {
  let best: Domain | undefined;
  for (const d of domains) {
    if (d.room < want) continue;
    if (!best || d.room < best.room || (d.room === best.room && (d.members[0] < best.members[0] || (d.members[0] === best.members[0] && d.key < best.key))))
      best = d;
  }
  return best;
}

/**
 * Orders `members` to put `want` tasks in as few domains as possible at each level from `i`
 * down: a domain that takes them all (best fit), else the roomiest domains one after another and,
 * for what is left, the best fit among the rest. Nodes not needed follow, in rank order.
 */
function pack(levels: readonly TopologyLevel[], candidates: readonly DomainCandidate[], members: readonly number[], i: number, want: number): number[] {
  if (i >= levels.length || want <= 0) return [...members];
  const domains = domainsAt(levels, candidates, members, i);
  if (domains.length === 0) return [...members];
  const order: number[] = [];
  const one = bestFit(domains, want);
  if (one) order.push(...pack(levels, candidates, one.members, i + 1, want));
  else {
    const rest = [...domains].sort((a, b) => b.room - a.room || a.members[0] - b.members[0]);
    let left = want;
    while (left > 0 && rest.length) {
      const last = bestFit(rest, left);
      const d = last ?? rest[0];
      rest.splice(rest.indexOf(d), 1);
      const take = Math.min(left, d.room);
      order.push(...pack(levels, candidates, d.members, i + 1, take));
      left -= take;
      if (d.room === 0) break;
    }
  }
  const taken = new Set(order);
  for (const m of members) if (!taken.has(m)) order.push(m);
  return order;
}

function unfit(level: TopologyLevel, tasks: number, largest?: Domain): Status {
  const where = largest
    ? `the roomiest ${level.name} (${largest.key}) has room for ${largest.room}`
    : `none has room for one task${level.label ? ` (a node is in a ${level.name} by its label ${level.label})` : ''}`;
  return {
    code: 'TopologyUnfit',
    plugin: 'Topology',
    reason: `topology: no ${level.name} has room for ${tasks === 1 ? 'the task' : `all ${tasks} tasks`} now; ${where}`,
    detail: { kind: 'topology', level: level.name, tasks, largest: largest?.room ?? 0, ...(largest ? { domain: largest.key } : {}) },
  };
}

/** The Domain plugin over a level order, top first. @default DEFAULT_TOPOLOGY_LEVELS */
export function topologyPlacement(levels: readonly TopologyLevel[] = DEFAULT_TOPOLOGY_LEVELS): DomainPlugin {
  const index = new Map(levels.map((l, i) => [l.name, i]));
  return {
    name: 'Topology',
    choose(work: PendingWork, want: number, candidates: readonly DomainCandidate[]): DomainChoice {
      const t = work.topology;
      const name = t?.required ?? t?.preferred;
      if (!t || name === undefined || want <= 0) return {};
      const level = index.get(name);
      if (level === undefined) {
        const known = levels.map((l) => l.name).join(', ');
        return {
          status: {
            code: 'TopologyUnfit',
            plugin: 'Topology',
            reason: `topology: level "${name}" is not one of the cluster's levels (${known})`,
            detail: { kind: 'topology', level: name, tasks: want, largest: 0 },
          },
        };
      }
      const all = candidates.map((_, k) => k);
      if (t.required !== undefined) {
        const domains = domainsAt(levels, candidates, all, level);
        const one = bestFit(domains, want);
        if (one) return { order: pack(levels, candidates, one.members, level + 1, want) };
        const largest = domains.reduce<Domain | undefined>((a, d) => (!a || d.room > a.room ? d : a), undefined);
        // Plain work takes what the roomiest domain holds now; the rest waits for a later pass.
        if (!work.gang && largest && largest.room > 0) return { order: pack(levels, candidates, largest.members, level + 1, largest.room) };
        return { status: unfit(levels[level], want, largest) };
      }
      // Preferred: the lowest level from `level` up where one domain takes it all, best fit; then as few domains below as fit.
      for (let i = level; i >= 0; i--) {
        const one = bestFit(domainsAt(levels, candidates, all, i), want);
        if (one) {
          const order = pack(levels, candidates, one.members, i + 1, want);
          const taken = new Set(order);
          return { order: [...order, ...all.filter((k) => !taken.has(k))] };
        }
      }
      return { order: pack(levels, candidates, all, 0, want) };
    },
  };
}

/** The Domain plugin of the default levels. */
export const Topology: DomainPlugin = topologyPlacement();

/**
 * Weight of the domain score in the Score sum when not configured (`BATCH_TOPOLOGY_SCORE_WEIGHT`):
 * measured on the topology scenario (docs/scheduler.md), where 4 beat 1, 2, 8 and 16 on three seeds.
 */
export const DEFAULT_DOMAIN_SCORE_WEIGHT = 4;

/**
 * Score (work without `topology`, not spreading): keep whole domains whole for the gangs that
 * require one, by sending other work to the fullest domain it fits in — bin packing one level up.
 * At the lowest level with a label (rack by default) a node scores
 *   u = max over the resources r the work asks for of  Σ used_r ÷ Σ capacity_r  over the domain's nodes
 * (0 for a whole domain, 1 for a full one), and 1 when the node lacks the level's label (no gang
 * can require it). Computed once per cycle from the snapshot's nodes: what the pass places counts
 * from the next cycle. Undefined — no score — when `weight` is 0 or no node has the level's label,
 * so the other scores decide exactly as without it. Measured against a jump for any domain in use
 * (0 whole, 0.5 + 0.5·u in use; 0 / 1): both made rack gangs wait longer (docs/scheduler.md). O(nodes).
 */
export function domainScore(
  nodes: readonly NodeSnapshot[],
  levels: readonly TopologyLevel[] = DEFAULT_TOPOLOGY_LEVELS,
  weight = DEFAULT_DOMAIN_SCORE_WEIGHT,
): ScorePlugin | undefined {
  let level = -1;
  for (let i = levels.length - 1; i >= 0 && level < 0; i--) if (levels[i].label !== undefined) level = i;
  if (level < 0 || !(weight > 0)) return undefined;
  const domains = new Map<string, { capacity: ResourceVector; used: ResourceVector }>();
  const domainOfNode = new Map<string, string>();
  for (const n of nodes) {
    const key = domainOf(levels, n, level);
    if (key === undefined) continue;
    domainOfNode.set(n.name, key);
    let d = domains.get(key);
    if (!d) domains.set(key, (d = { capacity: {}, used: {} }));
    for (const [k, v] of Object.entries(n.capacity)) d.capacity[k] = (d.capacity[k] ?? 0) + v;
    for (const [k, v] of Object.entries(n.used)) d.used[k] = (d.used[k] ?? 0) + v;
  }
  if (domains.size === 0) return undefined;
  // A node's domain is a function of these labels (the levels down to the one scored): nodes alike in them score alike (node buckets).
  const keys = levels.slice(0, level + 1).flatMap((l) => (l.label === undefined ? [] : [l.label]));
  const score = (work: PendingWork, node: NodeSnapshot): number => {
    if (work.topology || work.spread) return 0;
    const key = domainOfNode.get(node.name);
    if (key === undefined) return 1;
    const d = domains.get(key)!;
    let u = 0;
    for (const [k, v] of Object.entries(work.resources)) {
      const cap = d.capacity[k] ?? 0;
      if (v > 0 && cap > 0) u = Math.max(u, (d.used[k] ?? 0) / cap);
    }
    return u;
  };
  return {
    name: 'TopologyDomain',
    weight,
    labelKeys: () => keys,
    score,
    // The score reads no room: it is its own bound.
    bound: score,
  };
}
