/** The order the controller's workers take workflows in (`takeNextWorkflow`): changes before the tick's re-plans, never one held. */
import { takeNextWorkflow } from '../src/workflow-controller';

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
  ])('dirty $dirty, swept $swept, held $held → $order', ({ dirty, swept, held, order }) => {
    const d = new Set<string>(dirty);
    const s = new Set<string>(swept);
    const h = new Set<string>(held);
    const taken: string[] = [];
    for (let id = takeNextWorkflow(d, s, h); id !== undefined; id = takeNextWorkflow(d, s, h)) taken.push(id);
    expect(taken).toEqual(order);
    // whatever was taken is held now; what is left in the sets is only what was held before
    for (const id of order) expect(h.has(id)).toBe(true);
    expect([...d, ...s].every((id) => held.includes(id))).toBe(true);
  });
});
