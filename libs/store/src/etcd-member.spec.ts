import { revokesLeasesOnLeaderResume } from './etcd-member';

describe('revokesLeasesOnLeaderResume (etcd-io/etcd#15247, fixed in 3.4.28 and 3.5.11)', () => {
  it.each<[string, boolean]>([
    // Debian bookworm's etcd: 3.4.23 < 3.4.28
    ['etcd Version: 3.4.23\nGit SHA: Not provided', true],
    ['etcd Version: 3.4.27', true],
    ['etcd Version: 3.4.28', false],
    ['etcd Version: 3.5.10', true],
    // the Helm chart's and CI's etcd (tools/etcd): 3.5.17 ≥ 3.5.11
    ['etcd Version: 3.5.17\nGit SHA: Not provided (use ./build instead of go build)', false],
    ['etcd Version: 3.6.0', false],
    ['etcd Version: 3.3.25', true],
    // nothing readable (not etcd, or not found): assumed affected, so fault tests stay on the safe side
    ['', true],
  ])('%j: %s', (text, want) => {
    expect(revokesLeasesOnLeaderResume(text)).toBe(want);
  });
});
