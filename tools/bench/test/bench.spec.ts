import { traceNodes, tracePods } from '../src/alibaba';
import { cutInstance, packInstance, parseOrLib } from '../src/packing';
import { makeBacklog, makeCluster, naivePlace } from '../src/scheduling';

describe('packing instances', () => {
  it('cuts full bins into pieces that add up to the bins exactly, in every dimension', () => {
    const inst = cutInstance('c', 20, [1000, 1000, 1000], 3);
    for (let d = 0; d < 3; d++) expect(inst.items.reduce((s, it) => s + it[d], 0)).toBe(20 * 1000);
    expect(inst.optimum).toBe(20);
  });

  it('reads an OR-Library bundle and scales decimal sizes to integers', () => {
    const text = '2\n a_00\n 150 3 2\n 100\n 50\n 100\n b_00\n 100.0 2 1\n 36.6\n 63.4\n';
    const [a, b] = parseOrLib(text, new Map([['a_00', 2]]), 'x');
    expect(a).toMatchObject({ name: 'a_00', capacity: [150], items: [[100], [50], [100]], optimum: 2 });
    expect(b).toMatchObject({ capacity: [1000], items: [[366], [634]], optimum: 1 });
  });

  it('packs a perfect two-item bin into one node', () => {
    // 366 + 634 = 1000: one bin
    expect(packInstance({ name: 'p', family: 'f', capacity: [1000], items: [[366], [634]], optimum: 1 }, 'bin-pack')).toBe(1);
  });
});

describe('scheduling bench inputs', () => {
  it('generates the same backlog for the same seed and the asked number of tasks', () => {
    const a = makeBacklog(5000, 1);
    expect(a.reduce((n, w) => n + w.tasks, 0)).toBe(5000);
    expect(makeBacklog(5000, 1)).toEqual(a);
  });

  it('the naive baseline places tasks on a small cluster', () => {
    // 2 CPU nodes of 32 cores, tasks of ≤ 4 cores: the first 10 tasks all fit
    expect(
      naivePlace(
        makeBacklog(1000, 2).filter((w) => !w.resources.gpu),
        makeCluster(2, 0),
        10,
      ),
    ).toBe(10);
  });
});

describe('alibaba trace', () => {
  it('reads nodes and pods: fractional shares, whole devices, model selectors, creation order', async () => {
    const nodes = traceNodes('sn,cpu_milli,memory_mib,gpu,model\nn0,32000,262144,0,\nn1,96000,786432,8,V100M32\n');
    expect(nodes[1]).toMatchObject({ capacity: { cpu: 96000, memory: 786432 * 2 ** 20, gpu: 8000 }, gpuCount: 8, labels: { 'gpu.model': 'V100M32' } });
    expect(nodes[0].labels).toEqual({});
    const header = 'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n';
    const pods = tracePods(`${header}p0,12000,16384,1,460,,LS,Running,100,500,100\np1,88000,327680,8,1000,V100M32|T4,BE,Succeeded,160,900,170\n`);
    // 460 milli of one device; 8 whole devices; submitAt relative to the first creation (100 s)
    expect(pods.map((p) => [p.resources.gpu, p.submitAt, p.selector, p.duration])).toEqual([
      [460, 0, {}, null],
      [8000, 60, { 'gpu.model': 'V100M32' }, null],
    ]);
    expect(tracePods(`${header}p0,1000,1024,0,0,,LS,Running,100,500,130\n`, false)[0].duration).toBe(370);
  });
});
