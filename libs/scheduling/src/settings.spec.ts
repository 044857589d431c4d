import { backfillSettings, settingsOfRecord, settingsRecord, SETTINGS_BOUNDS } from './settings';

describe('scheduler settings as a record', () => {
  const policy = {
    aging: { perHour: 1, max: 10 },
    prices: { 'gpu:H100': 4, 'gpu:T4': 0.5 },
    topology: [{ name: 'pod', label: 'example.com/pod' }, { name: 'host' }],
    domainScoreWeight: 7,
  };
  const backfill = { maxReservations: 2, runtimeSeconds: 600, queueRuntimeSeconds: { train: 86_400 } };

  it('gives back what the leader stored', () => {
    const back = settingsOfRecord(JSON.parse(JSON.stringify(settingsRecord(policy, backfill, 1_000))));
    expect(back.policy).toEqual(policy);
    // the estimate of a queue with its own (86 400 s, operator-set) and of one without (the default 600 s)
    expect([back.backfill?.maxReservations, back.backfill?.runtimeSeconds('train'), back.backfill?.runtimeSeconds('other')]).toEqual([2, 86_400, 600]);
    expect([back.backfill?.configured?.('train'), back.backfill?.configured?.('other')]).toEqual([true, false]);
  });

  it('stores no backfill when it is off, and none comes back', () => {
    expect(settingsOfRecord(settingsRecord({}, undefined, 1)).backfill).toBeUndefined();
  });

  it.each([
    // each field malformed or over its bound on its own: that one is left out (its default applies), the others kept
    { field: 'aging', what: 'a negative rate', value: { perHour: -1, max: 10 } },
    { field: 'aging', what: 'over the priority range (2,000)', value: { perHour: 1, max: 2001 } },
    { field: 'aging', what: 'a string', value: 'fast' },
    { field: 'prices', what: 'a price that is not a number', value: { 'gpu:H100': 'four' } },
    { field: 'prices', what: 'over 1,000,000', value: { 'gpu:H100': 1e6 + 1 } },
    {
      field: 'prices',
      what: `${SETTINGS_BOUNDS.prices + 1} entries`,
      value: Object.fromEntries(Array.from({ length: SETTINGS_BOUNDS.prices + 1 }, (_, i) => [`r${i}`, 1])),
    },
    { field: 'topology', what: 'no level', value: [] },
    { field: 'topology', what: 'a level without a name', value: [{ label: 'x' }] },
    {
      field: 'topology',
      what: 'a name twice',
      value: [
        { name: 'rack', label: 'a' },
        { name: 'rack', label: 'b' },
      ],
    },
    { field: 'topology', what: 'a bare level before a labelled one', value: [{ name: 'host' }, { name: 'rack', label: 'r' }] },
    { field: 'topology', what: 'not a level name', value: [{ name: 'Rack!', label: 'r' }] },
    {
      field: 'topology',
      what: `${SETTINGS_BOUNDS.topologyLevels + 1} levels`,
      value: Array.from({ length: SETTINGS_BOUNDS.topologyLevels + 1 }, (_, i) => ({ name: `l${i}`, label: `x/l${i}` })),
    },
    { field: 'domainScoreWeight', what: 'over 100', value: 101 },
    { field: 'domainScoreWeight', what: 'NaN', value: Number.NaN },
  ])('ignores $field: $what', ({ field, value }) => {
    const record = { ...settingsRecord(policy, undefined, 1), [field]: value };
    const { policy: back } = settingsOfRecord(record);
    expect(back).toEqual(Object.fromEntries(Object.entries(policy).filter(([k]) => k !== field)));
  });

  it.each([
    { backfill: { maxReservations: 1.5, runtimeSeconds: 600, queueRuntimeSeconds: {} } },
    { backfill: { maxReservations: 1, runtimeSeconds: 0, queueRuntimeSeconds: {} } },
    { backfill: { maxReservations: 1, runtimeSeconds: 600, queueRuntimeSeconds: { q: -5 } } },
    { backfill: { maxReservations: 101, runtimeSeconds: 600, queueRuntimeSeconds: {} } },
    { backfill: { maxReservations: 1, runtimeSeconds: 2_592_001, queueRuntimeSeconds: {} } },
    { backfill: [1] },
  ])('ignores a malformed backfill $backfill', (over) => {
    expect(settingsOfRecord({ at: 1, ...over }).backfill).toBeUndefined();
  });

  it('reads anything that is not a record as no settings', () => {
    for (const raw of [undefined, null, 'x', 42, []]) expect(settingsOfRecord(raw)).toEqual({ policy: {} });
  });

  it('backfillSettings: a queue with its own estimate is operator-set', () => {
    const b = backfillSettings(backfill);
    expect([b.runtimeSeconds('train'), b.runtimeSeconds('x'), b.configured?.('train'), b.configured?.('x')]).toEqual([86_400, 600, true, false]);
  });
});
