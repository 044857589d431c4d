/**
 * A `Clock` that moves only when a test moves it: tests hand it to a service (Nest token
 * `CLOCK`, or a `clock` option) and skip a wait by advancing it instead of sleeping.
 */
import type { Clock } from './clock';

/**
 * A clock a test drives. Its two readings move together on `advance` (time passing) and apart
 * on `stepWall` (the wall clock set by NTP or an operator, which must not shorten or stretch a
 * wait measured on the monotonic reading).
 */
export class FakeClock implements Clock {
  private wallMs: number;
  private monoMs: number;

  /**
   * @param startWallMs the first wall reading, in milliseconds since the Unix epoch.
   * @param startMonoMs the first monotonic reading, in milliseconds. @default 0
   */
  constructor(startWallMs: number, startMonoMs = 0) {
    this.wallMs = startWallMs;
    this.monoMs = startMonoMs;
  }

  /** The wall reading, in milliseconds since the Unix epoch. */
  now(): number {
    return this.wallMs;
  }

  /** The monotonic reading, in milliseconds. */
  monotonic(): number {
    return this.monoMs;
  }

  /**
   * Lets `ms` milliseconds pass: both readings move forward by `ms`.
   *
   * @param ms how long passes, in milliseconds; must be ≥ 0 (time does not run backwards).
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: ms must be a number ≥ 0 (got ${ms})`);
    this.wallMs += ms;
    this.monoMs += ms;
  }

  /**
   * Steps the wall clock alone, as NTP or an operator setting the time does: the monotonic
   * reading stays where it is.
   *
   * @param ms how far the wall clock jumps, in milliseconds; negative steps it back.
   */
  stepWall(ms: number): void {
    this.wallMs += ms;
  }
}
