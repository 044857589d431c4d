/**
 * One resource's bar, as the queues and nodes pages draw it: a `meter` (for screen readers, its
 * label and percentage) with the part used within a limit filled, the part beyond it (borrowed)
 * filled apart, an optional mark where the limit ends, and the quantities as text beside.
 */
import type { ComponentChildren } from 'preact';
import { html } from './html';

/** What a bar shows. Fractions are of the whole bar, 0–1. */
export interface MeterBarProps {
  /** The resource's key (`cpu`, `gpu:A100`), for `data-resource`. */
  resource: string;
  /** The name shown before the bar. */
  name: string;
  /** The sentence a screen reader and the tooltip give. */
  label: string;
  /** Part used within the limit. */
  within: number;
  /** Part used beyond it (borrowed). @default 0 */
  beyond?: number;
  /** Where the limit ends, drawn as a mark when inside the bar. @default no mark */
  limitAt?: number;
  /** The text after the bar. */
  text: ComponentChildren;
  /** A smaller row (the nodes table). @default false */
  small?: boolean;
  /** The quantity used, as `data-used` (tests read it). @default none */
  used?: string;
}

export function MeterBar(p: MeterBarProps) {
  const beyond = p.beyond ?? 0;
  const pct = (f: number) => `${100 * Math.min(1, Math.max(0, f))}%`;
  return html`<div class=${p.small ? 'bar-row small' : 'bar-row'} data-resource=${p.resource}>
    <span class="bar-name">${p.name}</span>
    <div
      class="bar"
      role="meter"
      aria-label=${p.label}
      aria-valuemin="0"
      aria-valuemax="100"
      aria-valuenow=${Math.round(100 * (p.within + beyond))}
      title=${p.label}
      data-used=${p.used}
    >
      <div class="fill" style=${{ width: pct(p.within) }}></div>
      ${beyond > 0 && html`<div class="fill borrowed" style=${{ width: pct(beyond) }}></div>`}
      ${p.limitAt !== undefined && p.limitAt < 1 && html`<div class="quota-mark" style=${{ left: pct(p.limitAt) }}></div>`}
    </div>
    <span class="bar-text">${p.text}</span>
  </div>`;
}
