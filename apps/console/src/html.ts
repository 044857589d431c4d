/** htm bound to Preact: tagged templates in place of JSX, so the build needs no JSX step. */
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

/** A duration in seconds or minutes as a person reads it; `—` without both ends. */
export function duration(from?: string, to?: string): string {
  if (!from || !to) return '—';
  const s = (Date.parse(to) - Date.parse(from)) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** `toLocaleString`'s format, made once: a thousand rows would otherwise make 2,000 formatters a reading. */
const INSTANT = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric',
});

/** An instant in the reader's locale; `—` when absent. */
export const when = (t?: string) => (t ? INSTANT.format(new Date(t)) : '—');

export const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled', 'Rejected']);
