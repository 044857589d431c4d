/** Parsing keys back into the ids they were built from: the apps never slice a prefix off themselves. */
import type { NodeAllocation } from '@batchapi/api';
import { allocationsByNode, Keys } from '@batchapi/store';

describe('Keys parsing', () => {
  const keys = new Keys(); // root "/batch/"
  const other = new Keys('/other/');
  it.each([
    // [parser, key, parsed] — a parser returns the one segment after its prefix, else undefined
    // "/batch/alloc/" is 13 characters: "/batch/alloc/n1".slice(13) = "n1"
    ['nodeOfAlloc', keys.alloc('n1'), 'n1'],
    ['nodeOfAlloc', '/batch/alloc/gpu-node.a_1', 'gpu-node.a_1'],
    // "/batch/jobs/" is 12 characters: "/batch/jobs/job-42".slice(12) = "job-42"
    ['jobIdOfJob', keys.job('job-42'), 'job-42'],
    // "/batch/workflows/" is 17 characters: "/batch/workflows/wf-7".slice(17) = "wf-7"
    ['workflowIdOf', keys.workflow('wf-7'), 'wf-7'],
    // the prefix itself names nothing
    ['nodeOfAlloc', keys.allocs(), undefined],
    ['jobIdOfJob', keys.jobs(), undefined],
    ['workflowIdOf', keys.workflows(), undefined],
    // a key under another prefix of the same root ("nodes/", "groups/", "results/", "jobs/")
    ['nodeOfAlloc', keys.node('n1'), undefined],
    ['jobIdOfJob', keys.groupsOf('job-42'), undefined],
    ['jobIdOfJob', keys.result('job-42', 0), undefined],
    ['workflowIdOf', keys.job('wf-7'), undefined],
    // deeper under the prefix: ids and node names hold no "/"
    ['jobIdOfJob', '/batch/jobs/a/b', undefined],
    // same layout under another root
    ['jobIdOfJob', other.job('job-42'), undefined],
  ] as const)('%s(%j) is %j', (parser, key, parsed) => {
    expect(keys[parser](key)).toBe(parsed);
  });

  it('parses under its own root', () => {
    // "/other/jobs/" is 12 characters, as "/batch/jobs/" is
    expect(other.jobIdOfJob(other.job('job-42'))).toBe('job-42');
    expect(other.nodeOfAlloc(keys.alloc('n1'))).toBeUndefined();
  });
});

describe('allocationsByNode', () => {
  it('maps alloc keys to their node names and leaves out any other key', () => {
    const keys = new Keys();
    const a: NodeAllocation = { used: { cpu: 1000 }, devices: {} };
    const b: NodeAllocation = { used: { cpu: 2000 }, devices: {} };
    const byNode = allocationsByNode(keys, [
      { key: keys.alloc('n1'), value: a },
      { key: keys.alloc('n2'), value: b },
      { key: keys.node('n3'), value: a },
    ]);
    expect([...byNode]).toEqual([
      ['n1', a],
      ['n2', b],
    ]);
  });
});
