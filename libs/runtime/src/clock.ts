/**
 * The clocks a service reads, behind one interface: services take a `Clock` (Nest token
 * `CLOCK`) instead of calling `Date.now()`, so tests drive time by advancing a fake clock
 * rather than sleeping.
 */
import { monotonicMs } from '@batchapi/store';

/** Wall time and monotonic time, as a service reads them. */
export interface Clock {
  /** Wall time in milliseconds since the Unix epoch (`Date.now`): for timestamps users see and records keep. */
  now(): number;
  /**
   * CLOCK_MONOTONIC in milliseconds (`monotonicMs`): for waits and timeouts, which a step of the
   * wall clock must neither cut short nor stretch. Not a time of day; compare only its readings.
   */
  monotonic(): number;
}

/** The machine's clocks. */
export const systemClock: Clock = { now: () => Date.now(), monotonic: monotonicMs };

/** Nest provider token of the `Clock` a service reads. @default systemClock (where a service provides none) */
export const CLOCK = Symbol('Clock');
