import { nodeSnapshot, pendingWork } from '../../../test/fixtures';
import type { NodeSnapshot, PendingWork, Toleration } from '../../snapshot';
import { TaintToleration, tolerates } from './index';

type Taint = NodeSnapshot['taints'][number];

const node = (taints: Taint[]): NodeSnapshot => nodeSnapshot('n1', { cpu: 8, memory: '32Gi' }, { taints });

const work = (tolerations?: Toleration[]): PendingWork => pendingWork('j1', 1, { cpu: 1 }, { queue: 'default', ...(tolerations ? { tolerations } : {}) });

const dedicated: Taint = { key: 'dedicated', value: 'ml', effect: 'NoSchedule' };

type Refusal = ReturnType<typeof TaintToleration.filter>;

/** The refusal for the untolerated taint `detail` (its key, value and effect), written as `reason`. */
const refusal = (reason: string, detail: Taint): Refusal => ({
  code: 'Unschedulable',
  plugin: 'TaintToleration',
  reason,
  detail: { kind: 'taint', ...detail },
});

describe('tolerates', () => {
  const table: Array<{ name: string; tol: Toleration; taint: Taint; want: boolean }> = [
    {
      name: 'Equal with the same key, value and effect',
      tol: { key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' },
      taint: dedicated,
      want: true,
    },
    { name: 'operator defaults to Equal', tol: { key: 'dedicated', value: 'ml' }, taint: dedicated, want: true },
    { name: 'Equal with a different value', tol: { key: 'dedicated', value: 'web' }, taint: dedicated, want: false },
    // Equal without a value compares '' with 'ml'
    { name: 'Equal without a value does not match a taint with one', tol: { key: 'dedicated' }, taint: dedicated, want: false },
    { name: 'Equal without a value matches a taint without one', tol: { key: 'gpu' }, taint: { key: 'gpu', effect: 'NoSchedule' }, want: true },
    {
      name: 'Equal with a value does not match a taint without one',
      tol: { key: 'gpu', value: 'yes' },
      taint: { key: 'gpu', effect: 'NoSchedule' },
      want: false,
    },
    // absent and empty values are the same
    { name: 'an empty value equals an absent one', tol: { key: 'gpu', value: '' }, taint: { key: 'gpu', effect: 'NoSchedule' }, want: true },
    { name: 'Exists matches any value', tol: { key: 'dedicated', operator: 'Exists' }, taint: dedicated, want: true },
    { name: 'Exists matches a taint without a value', tol: { key: 'gpu', operator: 'Exists' }, taint: { key: 'gpu', effect: 'NoExecute' }, want: true },
    { name: 'Exists ignores a value it was given', tol: { key: 'dedicated', operator: 'Exists', value: 'web' }, taint: dedicated, want: true },
    { name: 'Exists still needs the same key', tol: { key: 'other', operator: 'Exists' }, taint: dedicated, want: false },
    { name: 'a different key never matches', tol: { key: 'dedicate', value: 'ml' }, taint: dedicated, want: false },
    { name: 'keys compare case-sensitively', tol: { key: 'Dedicated', value: 'ml' }, taint: dedicated, want: false },
    { name: 'no effect matches NoSchedule', tol: { key: 'dedicated', value: 'ml' }, taint: dedicated, want: true },
    { name: 'no effect matches NoExecute', tol: { key: 'dedicated', operator: 'Exists' }, taint: { key: 'dedicated', effect: 'NoExecute' }, want: true },
    { name: 'an effect mismatch does not match', tol: { key: 'dedicated', value: 'ml', effect: 'NoExecute' }, taint: dedicated, want: false },
    {
      name: 'an effect mismatch does not match even with Exists',
      tol: { key: 'dedicated', operator: 'Exists', effect: 'NoExecute' },
      taint: dedicated,
      want: false,
    },
    { name: 'a matching effect with Exists', tol: { key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }, taint: dedicated, want: true },
  ];

  it.each(table)('$name', ({ tol, taint, want }) => {
    expect(tolerates(tol, taint)).toBe(want);
  });
});

describe('TaintToleration', () => {
  const table: Array<{ name: string; taints: Taint[]; tolerations?: Toleration[]; want: Refusal }> = [
    { name: 'an untainted node passes work without tolerations', taints: [], want: undefined },
    { name: 'an untainted node passes work with tolerations', taints: [], tolerations: [{ key: 'dedicated', operator: 'Exists' }], want: undefined },
    {
      name: 'a NoSchedule taint with a value refuses untolerating work',
      taints: [dedicated],
      want: refusal('taint dedicated=ml:NoSchedule', { key: 'dedicated', value: 'ml', effect: 'NoSchedule' }),
    },
    // no value: the reason has no '=' and the detail no value field
    {
      name: 'a NoExecute taint without a value refuses untolerating work',
      taints: [{ key: 'maintenance', effect: 'NoExecute' }],
      want: refusal('taint maintenance:NoExecute', { key: 'maintenance', effect: 'NoExecute' }),
    },
    // an empty value reads as no value
    {
      name: 'an empty taint value is reported as no value',
      taints: [{ key: 'maintenance', value: '', effect: 'NoSchedule' }],
      want: refusal('taint maintenance:NoSchedule', { key: 'maintenance', effect: 'NoSchedule' }),
    },
    { name: 'PreferNoSchedule is only a preference', taints: [{ key: 'spot', value: 'true', effect: 'PreferNoSchedule' }], want: undefined },
    { name: 'a tolerated taint passes', taints: [dedicated], tolerations: [{ key: 'dedicated', value: 'ml' }], want: undefined },
    {
      name: 'any one of the tolerations may match',
      taints: [dedicated],
      tolerations: [{ key: 'gpu' }, { key: 'dedicated', operator: 'Exists' }],
      want: undefined,
    },
    {
      name: 'a toleration for a different effect does not help',
      taints: [dedicated],
      tolerations: [{ key: 'dedicated', value: 'ml', effect: 'NoExecute' }],
      want: refusal('taint dedicated=ml:NoSchedule', { key: 'dedicated', value: 'ml', effect: 'NoSchedule' }),
    },
    {
      name: 'every hard taint must be tolerated: the first untolerated is reported',
      taints: [dedicated, { key: 'spot', value: 'true', effect: 'PreferNoSchedule' }, { key: 'maintenance', effect: 'NoExecute' }],
      tolerations: [{ key: 'dedicated', value: 'ml' }],
      want: refusal('taint maintenance:NoExecute', { key: 'maintenance', effect: 'NoExecute' }),
    },
    {
      name: 'all hard taints tolerated, a preference ignored',
      taints: [dedicated, { key: 'spot', value: 'true', effect: 'PreferNoSchedule' }, { key: 'maintenance', effect: 'NoExecute' }],
      tolerations: [
        { key: 'dedicated', value: 'ml' },
        { key: 'maintenance', operator: 'Exists', effect: 'NoExecute' },
      ],
      want: undefined,
    },
  ];

  it.each(table)('$name', ({ taints, tolerations, want }) => {
    expect(TaintToleration.filter(work(tolerations), node(taints))).toStrictEqual(want);
  });
});
