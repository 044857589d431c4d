/**
 * The leader's nominations (`addNominations`, `nominationsInForce`): each job's lapse at its own
 * pass's lift time. A later pass must not extend an earlier job's: a gang's nominations hold room
 * on its nodes (`placeGang`), so a gang one of whose nodes never gets the room would otherwise hold
 * the others' room for as long as passes keep coming (every re-pack or defragmentation pass
 * re-dated them all), and defragmentation would never serve it again (`nominated`).
 */
import { addNominations, nominationsInForce } from '../src';

const T = 1_800_000_000_000;
const LIFT = 600_000;

const jobsAt = (h: ReturnType<typeof nominationsInForce>) => (h ? [...h.byJob.keys()].sort() : []);

describe('nominations lapse per job', () => {
  // The gang nominated at T (its nodes a, b); later passes nominate x at T + 400 s and y at T + 700 s.
  const first = addNominations(undefined, new Map([['gang', ['a', 'b']]]), T, LIFT);
  const second = addNominations(first, new Map([['x', ['c']]]), T + 400_000, LIFT);
  it.each([
    // gang: T + 600 s; x: T + 400 s + 600 s = T + 1,000 s
    { name: 'both before the gang lapses', at: T + 599_999, jobs: ['gang', 'x'] },
    { name: "the gang at its own lift time, though x's pass came later", at: T + 600_000, jobs: ['x'] },
    { name: 'none once x lapses too', at: T + 1_000_000, jobs: [] },
  ])('$name', ({ at, jobs }) => {
    expect(jobsAt(nominationsInForce(second, at, LIFT))).toEqual(jobs);
  });

  it('a pass after the gang lapsed keeps only what is in force; until is the last lapse', () => {
    // At T + 700 s the gang (lapsed at T + 600 s) is dropped; x (T + 1,000 s) and y (T + 1,300 s) stay.
    const third = addNominations(second, new Map([['y', ['d']]]), T + 700_000, LIFT);
    expect(jobsAt(third)).toEqual(['x', 'y']);
    expect(third.since.get('x')).toBe(T + 400_000);
    expect(third.until).toBe(T + 1_300_000);
  });

  it("a job's new entries replace its old, with their own start", () => {
    // x again at T + 500 s: its lapse moves to T + 1,100 s, the gang's stays at T + 600 s.
    const again = addNominations(second, new Map([['x', ['e']]]), T + 500_000, LIFT);
    expect(again.byJob.get('x')).toEqual(['e']);
    expect(jobsAt(nominationsInForce(again, T + 600_000, LIFT))).toEqual(['x']);
    expect(jobsAt(nominationsInForce(again, T + 1_099_999, LIFT))).toEqual(['x']);
  });

  it('nothing lapsed: the same nominations (the cycles see an unchanged policy)', () => {
    expect(nominationsInForce(second, T + 1, LIFT)).toBe(second);
  });
});
