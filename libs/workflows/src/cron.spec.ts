import type { ScheduleInstance } from '@batchapi/api';
import { decideTick, MAX_TICKS_PER_DECISION, parseCron, settleInstances, type TickInput, ticksBetween } from './cron';

const iso = (s: string) => Date.parse(s);
const at = (ms: number) => new Date(ms).toISOString();

describe('ticksBetween across daylight-saving changes', () => {
  it.each([
    // America/New_York springs forward on 2026-03-08 at 02:00 EST (07:00Z) to 03:00 EDT: 02:30 does not exist
    // that day. 03-07 02:30 EST = 07:30Z (before the window); 03-08 fires an hour later on the wall, 03:30 EDT
    // = 03:30 + 4 h = 07:30Z (23 h after the previous tick); 03-09 02:30 EDT = 06:30Z.
    [
      'New York, spring forward, 02:30 daily',
      '30 2 * * *',
      'America/New_York',
      '2026-03-07T12:00:00Z',
      '2026-03-09T12:00:00Z',
      ['2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z'],
    ],
    // Falls back on 2026-11-01 at 02:00 EDT (06:00Z) to 01:00 EST: 01:30 happens twice, at 05:30Z (EDT, UTC-4)
    // and 06:30Z (EST, UTC-5). It fires once, at the first; 11-02 01:30 EST = 06:30Z (25 h later).
    [
      'New York, fall back, 01:30 daily',
      '30 1 * * *',
      'America/New_York',
      '2026-10-31T12:00:00Z',
      '2026-11-02T12:00:00Z',
      ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'],
    ],
    // Every 30 minutes through the repeated hour: 01:00 and 01:30 EDT (05:00Z, 05:30Z) fire; their repeats in
    // EST (06:00Z, 06:30Z) do not; 02:00 EST = 07:00Z. No wall time fires twice.
    [
      'New York, fall back, every 30 minutes',
      '*/30 * * * *',
      'America/New_York',
      '2026-11-01T04:50:00Z',
      '2026-11-01T07:10:00Z',
      ['2026-11-01T05:00:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-01T07:00:00.000Z'],
    ],
    // Europe/Berlin springs forward on 2026-03-29 at 02:00 CET (01:00Z) to 03:00 CEST. 03-28 02:30 CET = 01:30Z;
    // 03-29 02:30 does not exist and fires at 03:30 CEST = 01:30Z (23 h later); 03-30 02:30 CEST = 00:30Z.
    [
      'Berlin, spring forward, 02:30 daily',
      '30 2 * * *',
      'Europe/Berlin',
      '2026-03-28T00:00:00Z',
      '2026-03-30T12:00:00Z',
      ['2026-03-28T01:30:00.000Z', '2026-03-29T01:30:00.000Z', '2026-03-30T00:30:00.000Z'],
    ],
    // Falls back on 2026-10-25 at 03:00 CEST (01:00Z) to 02:00 CET: 02:30 happens at 00:30Z (CEST) and 01:30Z
    // (CET); it fires once, at 00:30Z. 10-24 02:30 CEST = 00:30Z; 10-26 02:30 CET = 01:30Z (25 h after 10-25's).
    [
      'Berlin, fall back, 02:30 daily',
      '30 2 * * *',
      'Europe/Berlin',
      '2026-10-24T00:00:00Z',
      '2026-10-26T12:00:00Z',
      ['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z'],
    ],
    // Weekdays at 09:00 Berlin across the spring change: Fri 03-27 09:00 CET = 08:00Z; the weekend is skipped;
    // Mon 03-30 09:00 CEST = 07:00Z.
    [
      'Berlin, weekdays 09:00 over the change',
      '0 9 * * 1-5',
      'Europe/Berlin',
      '2026-03-27T00:00:00Z',
      '2026-03-31T00:00:00Z',
      ['2026-03-27T08:00:00.000Z', '2026-03-30T07:00:00.000Z'],
    ],
    // UTC has no change: @daily is 00:00Z each day; the window (after, until] holds 03-29 and 03-30, not 03-28.
    [
      'UTC, @daily, window excludes its start',
      '@daily',
      'UTC',
      '2026-03-28T00:00:00Z',
      '2026-03-30T00:00:00Z',
      ['2026-03-29T00:00:00.000Z', '2026-03-30T00:00:00.000Z'],
    ],
  ])('%s', (_name, expr, tz, from, to, want) => {
    expect(ticksBetween(parseCron(expr, tz), iso(from), iso(to)).map(at)).toEqual(want);
  });
});

describe('parseCron', () => {
  it.each([
    ['a minute out of range', '61 * * * *', 'UTC', 'schedule', /minute/],
    ['six fields (seconds are not offered)', '* * * * * *', 'UTC', 'schedule', /6 fields/],
    ['one word that is not a nickname', 'often', 'UTC', 'schedule', /1 fields/],
    ['an unknown time zone', '0 2 * * *', 'Mars/Olympus', 'timeZone', /IANA/],
  ])('refuses %s, naming the field', (_name, expr, tz, field, message) => {
    expect(() => parseCron(expr, tz)).toThrow(
      expect.objectContaining({ code: 'invalid_argument', details: expect.objectContaining({ field }), message: expect.stringMatching(message) }),
    );
  });
});

describe('decideTick', () => {
  const everyMinute = parseCron('* * * * *');
  const hourly = parseCron('0 * * * *');
  const base = (over: Partial<TickInput>): TickInput => ({
    cron: everyMinute,
    lastScheduleTime: iso('2026-12-01T10:00:00Z'),
    now: iso('2026-12-01T10:00:30Z'),
    concurrencyPolicy: 'Allow',
    running: 0,
    ...over,
  });
  const T = (hhmmss: string) => iso(`2026-12-01T${hhmmss}Z`);

  it.each<[string, Partial<TickInput>, unknown]>([
    // No tick in (10:00:00, 10:00:30]: the next is 10:01.
    ['nothing due yet', {}, { action: 'idle', next: T('10:01:00') }],
    // Exactly on the tick: (10:00, 10:01] holds 10:01.
    ['the tick at its very time', { now: T('10:01:00') }, { action: 'fire', tick: T('10:01:00'), missed: { count: 0 }, replace: false }],
    // After a 3-minute outage, (10:00, 10:03:10] holds 10:01, 10:02, 10:03: the latest fires, 2 are superseded.
    [
      'after an outage, only the latest tick fires',
      { now: T('10:03:10') },
      { action: 'fire', tick: T('10:03:00'), missed: { count: 2, last: T('10:02:00') }, replace: false },
    ],
    // Hourly, deadline 60 s: at 11:01:00 the 11:00 tick is 60 s late, not more than 60 s: on time.
    [
      'exactly the starting deadline late is on time',
      { cron: hourly, now: T('11:01:00'), startingDeadlineSeconds: 60 },
      { action: 'fire', tick: T('11:00:00'), missed: { count: 0 }, replace: false },
    ],
    // 1 ms later it is 60.001 s late > 60 s: missed, and recorded so it is never fired later.
    [
      'a millisecond past the deadline is missed',
      { cron: hourly, now: T('11:01:00') + 1, startingDeadlineSeconds: 60 },
      { action: 'miss', missed: { count: 1, last: T('11:00:00') } },
    ],
    // (10:00, 10:05:30] holds 5 ticks; the latest, 10:05, is 30 s late ≤ 60 s: it fires, 4 are superseded.
    [
      'within the deadline after an outage: the latest fires',
      { now: T('10:05:30'), startingDeadlineSeconds: 60 },
      { action: 'fire', tick: T('10:05:00'), missed: { count: 4, last: T('10:04:00') }, replace: false },
    ],
    [
      'Forbid with one running: waits',
      { now: T('10:01:00'), concurrencyPolicy: 'Forbid', running: 1 },
      { action: 'wait', tick: T('10:01:00'), missed: { count: 0 }, reason: 'forbid' },
    ],
    [
      'Forbid with none running: fires',
      { now: T('10:01:00'), concurrencyPolicy: 'Forbid' },
      { action: 'fire', tick: T('10:01:00'), missed: { count: 0 }, replace: false },
    ],
    [
      'Replace with one running: fires and replaces',
      { now: T('10:01:00'), concurrencyPolicy: 'Replace', running: 1 },
      { action: 'fire', tick: T('10:01:00'), missed: { count: 0 }, replace: true },
    ],
    [
      'Allow with one running: fires alongside',
      { now: T('10:01:00'), running: 1 },
      { action: 'fire', tick: T('10:01:00'), missed: { count: 0 }, replace: false },
    ],
    [
      'Allow at the most active instances: waits',
      { now: T('10:01:00'), running: 3, maxActive: 3 },
      { action: 'wait', tick: T('10:01:00'), missed: { count: 0 }, reason: 'maxActive' },
    ],
    [
      'Replace at the most active instances: replaces',
      { now: T('10:01:00'), running: 3, maxActive: 3, concurrencyPolicy: 'Replace' },
      { action: 'fire', tick: T('10:01:00'), missed: { count: 0 }, replace: true },
    ],
    // Forbid while the 10:01 tick waits and 10:02 comes: 10:01 is superseded (missed), 10:02 waits.
    [
      'Forbid, a waiting tick is superseded by the next',
      { now: T('10:02:00'), concurrencyPolicy: 'Forbid', running: 1 },
      { action: 'wait', tick: T('10:02:00'), missed: { count: 1, last: T('10:01:00') }, reason: 'forbid' },
    ],
    ['suspended: nothing', { now: T('10:05:00'), suspend: true }, { action: 'idle' }],
    // A 200-minute outage: (10:00, 13:20] holds 200 ticks > 100: the first 100 are missed
    // (10:01 … 10:00 + 100 min = 11:40) and the next pass goes on from there.
    [
      'a long outage is counted missed a bounded pass at a time',
      { now: T('13:20:00') },
      { action: 'miss', missed: { count: MAX_TICKS_PER_DECISION, last: T('11:40:00') } },
    ],
  ])('%s', (_name, over, want) => {
    expect(decideTick(base(over))).toEqual(want);
  });

  it('fires the New York 02:30 tick on the spring-forward day 23 h after the previous one', () => {
    // 03-07 02:30 EST = 07:30Z; 03-08 has no 02:30 and fires at 03:30 EDT = 07:30Z, 24 h of UTC later but
    // 23 h of wall time; 10 s after it, with a 60 s deadline, it is on time.
    const cron = parseCron('30 2 * * *', 'America/New_York');
    const d = decideTick({
      cron,
      lastScheduleTime: iso('2026-03-07T07:30:00Z'),
      now: iso('2026-03-08T07:30:10Z'),
      startingDeadlineSeconds: 60,
      concurrencyPolicy: 'Forbid',
      running: 0,
    });
    expect(d).toEqual({ action: 'fire', tick: iso('2026-03-08T07:30:00Z'), missed: { count: 0 }, replace: false });
  });
});

describe('settleInstances', () => {
  const inst = (id: string, scheduledAt: number): ScheduleInstance => ({ id, kind: 'job', scheduledAt });
  it('moves finished instances to their history, newest first, trimmed to the limits', () => {
    const s = {
      active: [inst('a', 1), inst('b', 2), inst('c', 3), inst('d', 4)],
      succeeded: [{ ...inst('old-ok', 0), phase: 'Succeeded', finishedAt: 5 }],
      failed: [{ ...inst('old-bad', 0), phase: 'Failed', finishedAt: 5 }],
      successfulHistoryLimit: 2,
      failedHistoryLimit: 1,
    };
    const out = settleInstances(
      s,
      new Map([
        ['a', 'Succeeded'],
        ['b', 'Cancelled'],
        ['c', 'Unknown'],
      ]),
      10,
    );
    // d runs on. Succeeded: c (tick 3, gone = ended), a (tick 1); old-ok (tick 0) is trimmed at 2.
    // Failed: b (tick 2, cancelled); old-bad is trimmed at 1.
    expect(out).toEqual({
      active: [inst('d', 4)],
      succeeded: [
        { ...inst('c', 3), phase: 'Unknown', finishedAt: 10 },
        { ...inst('a', 1), phase: 'Succeeded', finishedAt: 10 },
      ],
      failed: [{ ...inst('b', 2), phase: 'Cancelled', finishedAt: 10 }],
    });
  });
});
