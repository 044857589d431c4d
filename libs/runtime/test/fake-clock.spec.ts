/** The fake clock tests drive: `advance` moves both readings, `stepWall` only the wall one. */
import { type Clock, FakeClock } from '../src';

type Step = { advance: number } | { stepWall: number };

describe('FakeClock', () => {
  // start: wall 1_000_000, monotonic 50
  it.each<{ name: string; steps: Step[]; wall: number; mono: number }>([
    { name: 'reads where it started until moved', steps: [], wall: 1_000_000, mono: 50 },
    // 1_000_000 + 250 + 750; 50 + 250 + 750
    { name: 'advance moves both readings', steps: [{ advance: 250 }, { advance: 750 }], wall: 1_001_000, mono: 1_050 },
    // an NTP step forward of an hour: 1_000_000 + 3_600_000; monotonic stays 50
    { name: 'a wall step forward leaves the monotonic reading', steps: [{ stepWall: 3_600_000 }], wall: 4_600_000, mono: 50 },
    // 1_000_000 - 60_000 + 10; 50 + 10
    { name: 'a wall step back, then time passes', steps: [{ stepWall: -60_000 }, { advance: 10 }], wall: 940_010, mono: 60 },
    { name: 'advancing by zero changes nothing', steps: [{ advance: 0 }], wall: 1_000_000, mono: 50 },
  ])('$name', ({ steps, wall, mono }) => {
    const clock = new FakeClock(1_000_000, 50);
    for (const s of steps) {
      if ('advance' in s) clock.advance(s.advance);
      else clock.stepWall(s.stepWall);
    }
    expect({ wall: clock.now(), mono: clock.monotonic() }).toEqual({ wall, mono });
  });

  it('starts its monotonic reading at 0 unless told', () => {
    const clock: Clock = new FakeClock(42);
    expect([clock.now(), clock.monotonic()]).toEqual([42, 0]);
  });

  it('refuses to run backwards', () => {
    const clock = new FakeClock(0);
    expect(() => clock.advance(-1)).toThrow('FakeClock.advance: ms must be a number ≥ 0 (got -1)');
    expect(() => clock.advance(NaN)).toThrow(RangeError);
    expect([clock.now(), clock.monotonic()]).toEqual([0, 0]);
  });
});
