import { InvalidArgumentError } from 'commander';
import { pastTime } from './times';

describe('pastTime', () => {
  const now = Date.UTC(2026, 11, 3, 12, 0, 0);
  it.each([
    // 7 days before 2026-12-03 12:00 is 2026-11-26 12:00
    ['7d', '2026-11-26T12:00:00.000Z'],
    ['12h', '2026-12-03T00:00:00.000Z'],
    ['30m', '2026-12-03T11:30:00.000Z'],
    ['90s', '2026-12-03T11:58:30.000Z'],
    ['2026-12-01T00:00:00Z', '2026-12-01T00:00:00.000Z'],
    // a zone offset is converted to UTC: 01:00 at +01:00 is 00:00Z
    ['2026-12-01T01:00:00+01:00', '2026-12-01T00:00:00.000Z'],
  ])('%s is %s', (text, iso) => {
    expect(pastTime(text, now)).toBe(iso);
  });

  it.each(['yesterday', '7', '-7d', '2026-12-01', '2026-12-01T00:00:00', ''])('refuses %j with a usage error', (text) => {
    expect(() => pastTime(text, now)).toThrow(InvalidArgumentError);
  });
});
