/** Times on the command line: `--since 7d` (a time ago) or `--since 2026-12-01T00:00:00Z`. */
import { InvalidArgumentError } from 'commander';
import ms from 'ms';

/**
 * A moment given as a time ago (`90s`, `30m`, `12h`, `7d`, `2w`: `ms` units) or as an RFC 3339
 * time with a zone, as the API's RFC 3339 text.
 * @param now - epoch milliseconds the time ago counts back from @default Date.now()
 * @throws InvalidArgumentError (commander's usage error) for anything else
 */
export function pastTime(text: string, now = Date.now()): string {
  const ago = /^\d+(\.\d+)?\s*[a-z]+$/i.test(text.trim()) ? ms(text.trim() as ms.StringValue) : undefined;
  if (typeof ago === 'number' && Number.isFinite(ago) && ago >= 0) return new Date(now - ago).toISOString();
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(text) && Number.isFinite(Date.parse(text))) {
    return new Date(Date.parse(text)).toISOString();
  }
  throw new InvalidArgumentError('must be a time ago (30m, 12h, 7d) or an RFC 3339 time with a zone (2026-12-01T00:00:00Z).');
}
