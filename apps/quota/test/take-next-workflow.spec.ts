/** The order the controller's workers take workflows in (`takeNextWorkflow`): changes before the tick's re-plans unless those waited a tick, never one held. */
import { replannedByTick, takeNextWorkflow } from '../src/workflow-controller';

describe('takeNextWorkflow', () => {
  it.each([
    // [changed, swept by the tick, held by workers, taken one after another until none is left]
    { dirty: [], swept: [], held: [], order: [] },
    // a change goes first even when the tick listed 3 workflows before it
    { dirty: ['w9'], swept: ['w1', 'w2', 'w3'], held: [], order: ['w9', 'w1', 'w2', 'w3'] },
    // w1 is both changed and swept: taken once, with the changes
    { dirty: ['w2', 'w1'], swept: ['w1', 'w3'], held: [], order: ['w2', 'w1', 'w3'] },
    // held ones are skipped in both sets: w1 (changed) and w3 (swept) stay for later
    { dirty: ['w1', 'w2'], swept: ['w3', 'w4'], held: ['w1', 'w3'], order: ['w2', 'w4'] },
    // the tick's re-plans waited a whole tick: they go first (a deadline is enforced by a re-plan)
    { dirty: ['w9'], swept: ['w1', 'w2'], held: [], sweptFirst: true, order: ['w1', 'w2', 'w9'] },
    // … still one reconcile for a workflow in both
    { dirty: ['w1', 'w9'], swept: ['w1', 'w2'], held: ['w2'], sweptFirst: true, order: ['w1', 'w9'] },
  ])('dirty $dirty, swept $swept, held $held, swept first $sweptFirst → $order', ({ dirty, swept, held, order, sweptFirst }) => {
    const d = new Set<string>(dirty);
    const s = new Set<string>(swept);
    const h = new Set<string>(held);
    const taken: string[] = [];
    for (let id = takeNextWorkflow(d, s, h, sweptFirst); id !== undefined; id = takeNextWorkflow(d, s, h, sweptFirst)) taken.push(id);
    expect(taken).toEqual(order);
    // whatever was taken is held now; what is left in the sets is only what was held before
    for (const id of order) expect(h.has(id)).toBe(true);
    expect([...d, ...s].every((id) => held.includes(id))).toBe(true);
  });
});

describe('replannedByTick', () => {
  it.each([
    // [the record's deadline and cancel, now (epoch ms), re-planned between full sweeps]
    // no deadline, no cancel: only a change wakes it
    { deadlineAt: undefined, cancelRequestedAt: undefined, now: 5000, replanned: false },
    // its deadline 1 ms ahead: not yet
    { deadlineAt: 5001, cancelRequestedAt: undefined, now: 5000, replanned: false },
    // at its deadline (advance: now >= deadlineAt expires it)
    { deadlineAt: 5000, cancelRequestedAt: undefined, now: 5000, replanned: true },
    { deadlineAt: 4000, cancelRequestedAt: undefined, now: 5000, replanned: true },
    // a cancel asked: its cascade goes on until the workflow ends
    { deadlineAt: undefined, cancelRequestedAt: 4500, now: 5000, replanned: true },
  ])('deadline $deadlineAt, cancel $cancelRequestedAt, now $now → $replanned', ({ deadlineAt, cancelRequestedAt, now, replanned }) => {
    expect(replannedByTick({ deadlineAt, cancelRequestedAt }, now)).toBe(replanned);
  });
});
