import { nodeSnapshot, pendingWork } from '../../../test/fixtures';
import type { NodeSnapshot, PendingWork } from '../../snapshot';
import { NodeSelector } from './index';

const node = (labels: Record<string, string>): NodeSnapshot => nodeSnapshot('n1', { cpu: 8, memory: '32Gi' }, { labels });

const work = (selector?: Record<string, string>): PendingWork => pendingWork('j1', 1, { cpu: 1 }, { queue: 'default', ...(selector ? { selector } : {}) });

type Refusal = ReturnType<typeof NodeSelector.filter>;

const refusal = (key: string, value: string): Refusal => ({
  code: 'Unschedulable',
  plugin: 'NodeSelector',
  reason: `label ${key}=${value} missing`,
  detail: { kind: 'label', key, value },
});

describe('NodeSelector', () => {
  const table: Array<{ name: string; selector?: Record<string, string>; labels: Record<string, string>; want: Refusal }> = [
    { name: 'no selector passes any node', selector: undefined, labels: {}, want: undefined },
    { name: 'an empty selector passes a node without labels', selector: {}, labels: {}, want: undefined },
    { name: 'a matching label passes', selector: { 'gpu.model': 'A100' }, labels: { 'gpu.model': 'A100' }, want: undefined },
    {
      name: 'labels beyond the selector do not matter',
      selector: { 'gpu.model': 'A100' },
      labels: { 'gpu.model': 'A100', zone: 'eu-1', pool: 'batch' },
      want: undefined,
    },
    {
      name: 'every selector entry must match',
      selector: { 'gpu.model': 'A100', zone: 'eu-1' },
      labels: { 'gpu.model': 'A100', zone: 'eu-1' },
      want: undefined,
    },
    { name: 'a missing label refuses the node', selector: { 'gpu.model': 'A100' }, labels: { zone: 'eu-1' }, want: refusal('gpu.model', 'A100') },
    { name: 'a different value refuses the node', selector: { 'gpu.model': 'A100' }, labels: { 'gpu.model': 'H100' }, want: refusal('gpu.model', 'A100') },
    // matching is exact: no case folding
    { name: 'values compare case-sensitively', selector: { 'gpu.model': 'A100' }, labels: { 'gpu.model': 'a100' }, want: refusal('gpu.model', 'A100') },
    // an empty value is a value: the label must exist with it
    { name: 'an empty selector value needs the label present', selector: { spot: '' }, labels: {}, want: refusal('spot', '') },
    { name: 'an empty selector value matches an empty label', selector: { spot: '' }, labels: { spot: '' }, want: undefined },
    // entries are checked in selector order; the first mismatch is the one reported
    {
      name: 'the first unmatched entry is reported',
      selector: { 'gpu.model': 'A100', zone: 'eu-1' },
      labels: { 'gpu.model': 'A100', zone: 'us-2' },
      want: refusal('zone', 'eu-1'),
    },
    {
      name: 'with several mismatches the first in selector order wins',
      selector: { zone: 'eu-1', 'gpu.model': 'A100' },
      labels: {},
      want: refusal('zone', 'eu-1'),
    },
    // a key inherited by every object is still not a label
    { name: 'an Object.prototype name is not a label', selector: { constructor: 'x' }, labels: {}, want: refusal('constructor', 'x') },
  ];

  it.each(table)('$name', ({ selector, labels, want }) => {
    expect(NodeSelector.filter(work(selector), node(labels))).toStrictEqual(want);
  });
});
