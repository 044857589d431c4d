import { formatLabelSelector, type LabelRequirement, LabelSelectorError, matchesLabels, parseLabelSelector } from './label-selector';

describe('parseLabelSelector', () => {
  it.each<[string, LabelRequirement[]]>([
    ['', []],
    ['  ', []],
    ['team=ml', [{ key: 'team', op: 'in', values: ['ml'] }]],
    ['team==ml', [{ key: 'team', op: 'in', values: ['ml'] }]],
    ['team != ml', [{ key: 'team', op: 'notin', values: ['ml'] }]],
    ['env=', [{ key: 'env', op: 'in', values: [''] }]],
    [
      'tier in (a, b),gpu',
      [
        { key: 'tier', op: 'in', values: ['a', 'b'] },
        { key: 'gpu', op: 'exists' },
      ],
    ],
    [
      'tier notin (a),!spot',
      [
        { key: 'tier', op: 'notin', values: ['a'] },
        { key: 'spot', op: 'absent' },
      ],
    ],
    [
      'batch.workflow=wf-1,example.com/owner=ana',
      [
        { key: 'batch.workflow', op: 'in', values: ['wf-1'] },
        { key: 'example.com/owner', op: 'in', values: ['ana'] },
      ],
    ],
  ])('reads %j', (text, want) => {
    expect(parseLabelSelector(text)).toEqual(want);
  });

  it.each([
    ['team=ml,', 'empty requirement'],
    ['a,,b', 'empty requirement'],
    ['tier in (a,', 'unclosed'],
    ['tier in a)', 'unbalanced'],
    ['tier in ((a))', 'unbalanced'],
    ['tier in ()', 'needs values'],
    ['-bad=x', 'not a label key'],
    ['team=has space', 'not a label value'],
    ['team=' + 'v'.repeat(64), 'not a label value'],
    ['k'.repeat(1025), 'over 1024 characters'],
    [Array.from({ length: 21 }, (_, i) => `k${i}`).join(','), 'has 21 requirements; at most 20'],
    [`k in (${Array.from({ length: 51 }, (_, i) => `v${i}`).join(',')})`, 'at most 50 values'],
  ])('refuses %j (%s)', (text, why) => {
    expect(() => parseLabelSelector(text)).toThrow(LabelSelectorError);
    expect(() => parseLabelSelector(text)).toThrow(why);
  });

  it('formats what it read so that reading it again gives the same requirements', () => {
    const reqs = parseLabelSelector('team=ml,tier notin (a,b),gpu,!spot');
    expect(formatLabelSelector(reqs)).toBe('team in (ml),tier notin (a,b),gpu,!spot');
    expect(parseLabelSelector(formatLabelSelector(reqs))).toEqual(reqs);
  });
});

describe('matchesLabels', () => {
  const labels = { team: 'ml', tier: 'b' };
  it.each<[string, Record<string, string> | undefined, boolean]>([
    ['', labels, true],
    ['team=ml', labels, true],
    ['team=web', labels, false],
    // != and notin also hold where the key is absent (as in Kubernetes)
    ['owner!=ana', labels, true],
    ['team!=ml', labels, false],
    ['tier in (a,b)', labels, true],
    ['tier notin (a,b)', labels, false],
    ['owner notin (a)', labels, true],
    ['team', labels, true],
    ['owner', labels, false],
    ['!owner', labels, true],
    ['!team', labels, false],
    // every requirement must hold
    ['team=ml,tier=a', labels, false],
    ['team=ml', undefined, false],
    ['!team', undefined, true],
  ])('%j on %j is %s', (text, l, want) => {
    expect(matchesLabels(l, parseLabelSelector(text))).toBe(want);
  });
});
