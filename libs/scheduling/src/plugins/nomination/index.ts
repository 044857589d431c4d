/**
 * Nominated nodes (run before the batch fill): work whose tasks a re-pack moved carries the nodes
 * the re-pack planned for them (`PendingWork.nominated`, one entry per task), and each such task is
 * placed there first — as the Kubernetes scheduler tries a pod's `nominatedNodeName` before the
 * others. A defragmentation (`planDefragment`) nominates the same way its moved tasks' destinations
 * and, for the waiting job it makes room for, the freed node. The re-pack's check placed every moved task on its node with all the moves done, but the
 * stops land one by one: a task whose nominated node does not have the room yet (another moved task
 * still runs there) waits for it in this pass instead of taking room elsewhere that another moved
 * task was planned to need. A task whose nominated node is gone or refused by the filters (cordoned,
 * relabelled) is placed as any other work, and so is every task once its nomination lapses (the
 * leader keeps them until its cordons' lift time). A gang a defragmentation laid out is placed on
 * its nominated nodes all at once, or, while some member's node still lacks the room, waits with the
 * room the others have held for it in the pass (`placeGang`) — unless work of a higher priority
 * ahead of it could use those nodes (`outranked`): then it is left to the pass, which holds that
 * room at the gang's turn when it does not place it (`holdGang`). Fractional GPUs and
 * queues with a quota limit are left to the pass (which charges the ledger).
 */
import { GPU_MILLI } from '@batchapi/api';
import type { FilterPlugin } from '../../framework/extension-points';
import type { QuotaLedger } from '../quota/ledger';
import { appendPlacement, type PendingWork, type Placement } from '../../snapshot';
import type { FillNode } from '../batch-fill';
import { fitsOne, pickDevices } from '../resource-fit';

/**
 * Places the nominated tasks of `ordered` (queue order) on their nominated nodes where they fit, and
 * holds back (for this pass) one task for each nominated node that takes them but lacks the room
 * yet, after the nodes with room took theirs: reduces
 * their `tasks`, takes their room from `states`, appends to `placements` and returns how many were
 * placed (at most `budget`). `outrankedGangs`, when given, receives the gangs left to the pass
 * because work of a higher priority ahead could use their nodes (`outranked`): the pass holds their
 * room at their turn (`holdGang`) when it does not place them. @default not collected
 */
export function placeNominated(
  ordered: PendingWork[],
  states: readonly FillNode[],
  filters: readonly FilterPlugin[],
  ledger: QuotaLedger,
  placements: Placement[],
  budget: number,
  outrankedGangs?: PendingWork[],
): number {
  const byName = new Map(states.map((s) => [s.node.name, s]));
  let placed = 0;
  for (let i = 0; i < ordered.length; i++) {
    const w = ordered[i];
    if (!w.nominated?.length || ledger.limits(w.queue)) continue;
    const share = w.resources.gpu ?? 0;
    if (share % GPU_MILLI !== 0) continue;
    if (w.gang) {
      if (!outranked(w, ordered, i, byName, filters)) placed += placeGang(w, byName, filters, placements, budget - placed);
      else outrankedGangs?.push(w);
      continue;
    }
    // Nominated nodes that take the work but lack the room yet (a moved task still runs there).
    let short = 0;
    for (const name of w.nominated) {
      if (w.tasks <= 0 || placed >= budget) break;
      const s = byName.get(name);
      if (!s || filters.some((f) => f.filter(w, s.node))) continue;
      const devices = fitsOne(w.resources, s.free) ? (share > 0 ? pickDevices(s.devices ?? {}, s.node.gpuCount, share) : []) : undefined;
      if (!devices) {
        short++;
        continue;
      }
      for (const [k, v] of Object.entries(w.resources)) s.free[k] = (s.free[k] ?? 0) - v;
      if (devices.length) {
        s.devices ??= {};
        for (const d of devices) s.devices[d] = (s.devices[d] ?? 0) + GPU_MILLI;
      }
      appendPlacement(placements, w.jobId, name, devices);
      w.tasks--;
      placed++;
    }
    // The tasks left wait, one for each nominated node still short of room, and only after every
    // nominated node with room took one: a job's tasks are alike, so which task a node was planned
    // for does not matter, and none waits while a node planned for its job has the room.
    w.tasks -= Math.min(w.tasks, short);
  }
  return placed;
}

/**
 * True when work ahead of gang `w` (index `at` of `ordered`) has a higher effective priority and
 * could run on one of the gang's nominated nodes (filters and capacity): the gang's nomination then
 * holds nothing against it — as a Kubernetes nomination counts only against pods of lower or equal
 * priority — and the gang is left to the pass, in its place in the order. Else a low-priority gang
 * whose last member's room has yet to be freed would hold the rest against more urgent work (and
 * preemption, which does not see the hold, could stop tasks for room the gang then keeps).
 */
function outranked(
  w: PendingWork,
  ordered: readonly PendingWork[],
  at: number,
  byName: ReadonlyMap<string, FillNode>,
  filters: readonly FilterPlugin[],
): boolean {
  for (let i = 0; i < at; i++) {
    const o = ordered[i];
    if (o.tasks <= 0 || o.priority <= w.priority) continue;
    for (const name of w.nominated ?? []) {
      const s = byName.get(name);
      if (s && fitsOne(o.resources, s.node.capacity) && !filters.some((f) => f.filter(o, s.node))) return true;
    }
  }
  return false;
}

/**
 * A gang a defragmentation laid out (one nominated node per member): all its members placed on
 * their nodes at once when every one fits; else the room the nodes have is held for it in this pass
 * and none is placed (its other stops have still to land). A gang with fewer nominations than
 * members, one on a node gone or refused by the filters, or more members than `budget` is left to
 * the pass. Returns the tasks placed.
 */
function placeGang(w: PendingWork, byName: ReadonlyMap<string, FillNode>, filters: readonly FilterPlugin[], placements: Placement[], budget: number): number {
  const states = gangNodes(w, byName, filters, budget);
  if (!states) return 0;
  const { taken, short } = takeRoom(w, states);
  const tasks = w.tasks;
  w.tasks = 0;
  if (short) return 0;
  for (const { s, devices } of taken) appendPlacement(placements, w.jobId, s.node.name, devices);
  return tasks;
}

/**
 * Holds, for the rest of the pass, the room of gang `w`'s nominated nodes that have room for one
 * member, as `placeGang` holds it for a gang that waits — for a gang left to the pass because work
 * of a higher priority ahead could use its nodes (`outranked`), once the pass has placed that work
 * and not the gang: its nomination still counts against the work behind it (of no higher priority,
 * as a Kubernetes nomination). `w.tasks` is not changed. Returns the nodes whose room it took
 * (none for a gang `placeGang` would leave to the pass).
 */
export function holdGang(w: PendingWork, byName: ReadonlyMap<string, FillNode>, filters: readonly FilterPlugin[], budget: number): FillNode[] {
  const states = gangNodes(w, byName, filters, budget);
  return states ? takeRoom(w, states).taken.map((t) => t.s) : [];
}

/**
 * The nodes of gang `w`'s members (its first `w.tasks` nominations), or undefined when it is not a
 * defragmentation's layout that fits the budget: fewer nominations than members, one on a node
 * gone or refused by the filters, or more members than `budget`.
 */
function gangNodes(w: PendingWork, byName: ReadonlyMap<string, FillNode>, filters: readonly FilterPlugin[], budget: number): FillNode[] | undefined {
  const nominated = w.nominated ?? [];
  if (nominated.length < w.tasks || w.tasks > budget) return undefined;
  const states = nominated.slice(0, w.tasks).map((name) => byName.get(name));
  if (states.some((s) => !s || filters.some((f) => f.filter(w, s.node)))) return undefined;
  return states as FillNode[];
}

/** Takes one member of `w`'s room (and devices) on each of `states` that has it; `short`: some had not. */
function takeRoom(w: PendingWork, states: readonly FillNode[]): { taken: Array<{ s: FillNode; devices: number[] }>; short: boolean } {
  const share = w.resources.gpu ?? 0;
  const taken: Array<{ s: FillNode; devices: number[] }> = [];
  let short = false;
  for (const s of states) {
    const devices = fitsOne(w.resources, s.free) ? (share > 0 ? pickDevices(s.devices ?? {}, s.node.gpuCount, share) : []) : undefined;
    if (!devices) {
      short = true;
      continue;
    }
    // Taken whether or not the gang is placed now: room a member's node has is held for it this pass.
    for (const [k, v] of Object.entries(w.resources)) s.free[k] = (s.free[k] ?? 0) - v;
    if (devices.length) {
      s.devices ??= {};
      for (const d of devices) s.devices[d] = (s.devices[d] ?? 0) + GPU_MILLI;
    }
    taken.push({ s, devices });
  }
  return { taken, short };
}
