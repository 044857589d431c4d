/**
 * What a bound group's tasks become on each event: how a newly bound group begins (lost with a
 * previous incarnation, cancelled before it started, or which tasks start and which end
 * preempted), what a task with no attempt running becomes on a cancel or preemption, what an
 * ended attempt's task records, and the environment an attempt gets.
 */
import type { Binding, TaskStatus } from '@batchapi/api';
import type { AttemptOutcome } from '../src/classify-exit';
import { type BoundGroup, endedTask, endWithoutAttempt, type GroupStart, lostTasks, planGroupStart } from '../src/group-events';
import { attemptEnv } from '../src/group-runner';
import type { ProcessExit } from '../src/task-process';

const NOW = 1_700_000_000_000;
const bound: TaskStatus = { state: 'Bound' };
const running: TaskStatus = { state: 'Running', startedAt: NOW - 5000 };
const succeeded: TaskStatus = { state: 'Succeeded', startedAt: NOW - 5000, exitCode: 0, finishedAt: NOW - 1000 };

/** Tasks 10..12 of a job, all `Bound`, first seen from a watch event, no previous incarnation. */
const fresh: BoundGroup = { binding: { start: 10, end: 13 }, tasks: [bound, bound, bound], atStart: false, leftOver: false };

describe('planGroupStart', () => {
  const cases: Array<[string, Partial<BoundGroup>, GroupStart]> = [
    // a group bound while this executor runs: every task starts, in index order
    ['fresh', {}, { kind: 'run', cancel: [], preempt: [], start: [10, 11, 12] }],
    // in the first listing but never started (all Bound, no ledger records): started now
    ['first listing, pristine', { atStart: true }, { kind: 'run', cancel: [], preempt: [], start: [10, 11, 12] }],
    // in the first listing with a task past Bound: a previous incarnation ran it; its attempts died with it
    ['first listing, a task ran', { atStart: true, tasks: [running, bound, bound] }, { kind: 'lost' }],
    // in the first listing, all Bound, but the ledger says a previous incarnation ran tasks: its report of the start may never have landed
    ['first listing, left over', { atStart: true, leftOver: true }, { kind: 'lost' }],
    // a status past Bound seen later (a relisting after a compaction) is this incarnation's own: not lost
    ['relisted, a task ran', { tasks: [running, bound, bound] }, { kind: 'run', cancel: [], preempt: [], start: [10, 11, 12] }],
    // its job was cancelled while its status was read: nothing starts
    ['cancelled', { binding: { start: 10, end: 13, cancelRequested: true } }, { kind: 'cancel' }],
    // cancel beats preemption: the job is going away
    ['cancelled and preempted', { binding: { start: 10, end: 13, cancelRequested: true, preempt: [11] } }, { kind: 'cancel' }],
    // lost beats cancel: the previous incarnation's attempts are gone either way, requeued NodeLost
    ['lost and cancelled', { atStart: true, leftOver: true, binding: { start: 10, end: 13, cancelRequested: true } }, { kind: 'lost' }],
    // preempted indices end without running; the others start (3 tasks − 1 preempted = 2 start)
    ['one preempted', { binding: { start: 10, end: 13, preempt: [11] } }, { kind: 'run', cancel: [], preempt: [11], start: [10, 12] }],
    // a task cancelled on its own ends without running; the others start (3 − 1 = 2)
    ['one task cancelled', { binding: { start: 10, end: 13, cancel: [12] } }, { kind: 'run', cancel: [12], preempt: [], start: [10, 11] }],
    // a task both cancelled and preempted is cancelled: it never runs again (3 − 1 cancelled − 1 preempted = 1 starts)
    [
      'cancelled and preempted tasks',
      { binding: { start: 10, end: 13, cancel: [11], preempt: [11, 12] } },
      { kind: 'run', cancel: [11], preempt: [12], start: [10] },
    ],
    // every index preempted: nothing starts
    ['all preempted', { binding: { start: 10, end: 13, preempt: [12, 10, 11] } }, { kind: 'run', cancel: [], preempt: [12, 10, 11], start: [] }],
  ];
  it.each(cases)('%s', (_name, over, want) => {
    expect(planGroupStart({ ...fresh, ...over })).toEqual(want);
  });
});

describe('endWithoutAttempt', () => {
  const cases: Array<[string, TaskStatus | undefined, 'cancel' | 'preempt', TaskStatus | undefined]> = [
    // a task not started yet is cancelled with nothing but its end
    ['cancel, Bound', bound, 'cancel', { state: 'Cancelled', finishedAt: NOW }],
    // a cancel drops what the task had (its attempt is not running here)
    ['cancel, Running', running, 'cancel', { state: 'Cancelled', finishedAt: NOW }],
    // a preemption keeps the task's start
    ['preempt, Running', running, 'preempt', { ...running, state: 'Preempted', finishedAt: NOW }],
    ['preempt, Bound', bound, 'preempt', { state: 'Preempted', finishedAt: NOW }],
    // an ended task stays as it ended
    ['cancel, Succeeded', succeeded, 'cancel', undefined],
    ['preempt, Succeeded', succeeded, 'preempt', undefined],
    // an index outside the group (a preemption mark of another range) changes nothing
    ['preempt, absent', undefined, 'preempt', undefined],
  ];
  it.each(cases)('%s', (_name, task, event, want) => {
    expect(endWithoutAttempt(task, event, NOW)).toEqual(want);
  });
});

describe('endedTask', () => {
  const cases: Array<[string, AttemptOutcome, ProcessExit, TaskStatus]> = [
    // exit 0: its exit code is kept with its start
    ['succeeded', { state: 'Succeeded' }, { exitCode: 0 }, { ...running, state: 'Succeeded', exitCode: 0, finishedAt: NOW }],
    // a failure carries its reason and exit code
    ['failed, exit 3', { state: 'Failed', reason: 'Error' }, { exitCode: 3 }, { ...running, state: 'Failed', reason: 'Error', exitCode: 3, finishedAt: NOW }],
    // killed by a signal: the signal, no exit code
    ['preempted, SIGTERM', { state: 'Preempted' }, { signal: 'SIGTERM' }, { ...running, state: 'Preempted', signal: 'SIGTERM', finishedAt: NOW }],
    // a node error's detail stays in the log, not in the status
    [
      'node error',
      { state: 'Failed', reason: 'NodeError' },
      { exitCode: 126, nodeError: 'no space left' },
      { ...running, state: 'Failed', reason: 'NodeError', exitCode: 126, finishedAt: NOW },
    ],
  ];
  it.each(cases)('%s', (_name, outcome, exit, want) => {
    expect(endedTask(running, outcome, exit, NOW)).toEqual(want);
  });
});

it('lostTasks ends every task not ended Failed/NodeLost, and keeps the ended ones', () => {
  expect(lostTasks([bound, running, succeeded], NOW)).toEqual([
    { state: 'Failed', reason: 'NodeLost', finishedAt: NOW },
    { ...running, state: 'Failed', reason: 'NodeLost', finishedAt: NOW },
    succeeded,
  ]);
});

describe('attemptEnv', () => {
  const binding: Binding = {
    jobId: 'j1',
    tenant: 't',
    queue: 'q',
    node: 'n1',
    start: 4,
    end: 6,
    attempt: 2,
    resources: { cpu: 100 },
    devices: [],
    boundAt: NOW,
    command: ['true'],
    env: { MINE: '1', BATCH_JOB_ID: 'forged', PATH: '/job/bin' },
  };
  const base = { BATCH_JOB_ID: 'j1', BATCH_ATTEMPT: '2', BATCH_NODE: 'n1', BATCH_RESULT_PATH: '/r.json' };
  const cases: Array<[string, Partial<Binding>, number, string | undefined, Record<string, string>]> = [
    // the job's env over the inherited PATH; the BATCH_* variables over the job's
    ['plain', {}, 5, undefined, { ...base, PATH: '/job/bin', HOME: '/home/x', MINE: '1', BATCH_TASK_INDEX: '5' }],
    // the trace of the attempt's task.run span
    ['traced', {}, 4, '00-abc-def-01', { ...base, PATH: '/job/bin', HOME: '/home/x', MINE: '1', BATCH_TASK_INDEX: '4', TRACEPARENT: '00-abc-def-01' }],
    // task 5 is offset 1: its devices and its map item (JSON)
    [
      'devices and items',
      { devices: [[0], [2, 3]], items: ['a', { b: 1 }] },
      5,
      undefined,
      { ...base, PATH: '/job/bin', HOME: '/home/x', MINE: '1', BATCH_TASK_INDEX: '5', CUDA_VISIBLE_DEVICES: '2,3', BATCH_MAP_ITEM: '{"b":1}' },
    ],
    // a task past the end of `items` gets no map item; one with no devices, no CUDA_VISIBLE_DEVICES
    ['short items', { devices: [[1]], items: ['a'] }, 5, undefined, { ...base, PATH: '/job/bin', HOME: '/home/x', MINE: '1', BATCH_TASK_INDEX: '5' }],
  ];
  it.each(cases)('%s', (_name, over, index, traceparent, want) => {
    expect(attemptEnv({ ...binding, ...over }, index, '/r.json', traceparent, { PATH: '/usr/bin', HOME: '/home/x' })).toEqual(want);
  });
  it('tells the task the largest result its node keeps, over any the job sets', () => {
    const env = attemptEnv({ ...binding, env: { ...binding.env, BATCH_RESULT_MAX_BYTES: '1' } }, 5, '/r.json', undefined, {}, 64 * 2 ** 20);
    expect(env.BATCH_RESULT_MAX_BYTES).toBe(String(64 * 2 ** 20)); // 64 MiB: a node with a blob store
  });
});
