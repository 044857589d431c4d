import { CONTAINER_RUNTIME_LABEL } from '@batchapi/api';
import { nodeSnapshot as node, pendingWork as work } from '../../../test/fixtures';
import { placeTasks } from '../../index';
import { ContainerImage } from './index';

const k8s = node('k8s', { cpu: '4' }, { labels: { [CONTAINER_RUNTIME_LABEL]: 'kubernetes' } });
const proc = node('proc', { cpu: '4' });

describe('ContainerImage', () => {
  it.each([
    // [case, work, node, refused]
    ['work in an image on a node that runs images', work('j', 1, { cpu: '1' }, { image: 'python:3.12' }), k8s, false],
    ['work in an image on a process node', work('j', 1, { cpu: '1' }, { image: 'python:3.12' }), proc, true],
    ['work without an image on a process node', work('j', 1, { cpu: '1' }), proc, false],
    ['work without an image on a node that runs images', work('j', 1, { cpu: '1' }), k8s, false],
  ])('%s', (_case, w, n, refused) => expect(ContainerImage.filter(w, n) !== undefined).toBe(refused));

  it('places work in an image only where images run, and says why the rest waits', () => {
    // 6 one-core tasks in an image: the k8s node takes 4; the process node (4 free cores) none → 2 wait
    const res = placeTasks([work('j', 6, { cpu: '1' }, { image: 'python:3.12' })], [proc, k8s]);
    expect(res.placements.map((p) => [p.node, p.count])).toEqual([['k8s', 4]]);
    expect(res.unplaced[0]).toMatchObject({
      jobId: 'j',
      tasks: 2,
      filtered: [
        { nodes: 1, status: { plugin: 'ContainerImage', reason: `runs no container images (no ${CONTAINER_RUNTIME_LABEL} label) for image python:3.12` } },
      ],
    });
  });
});
