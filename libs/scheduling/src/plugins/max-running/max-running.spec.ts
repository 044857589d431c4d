import { pendingWork } from '../../../test/fixtures';
import { limitRunning, runLimitMessage, tasksInFlight } from './index';

const spec = (tasks: number, maxRunning?: number) => ({ resources: { cpu: 1000 }, tasks, priority: 0, ...(maxRunning ? { maxRunning } : {}) });
const counts = (succeeded = 0, failed = 0, cancelled = 0) => ({ succeeded, failed, cancelled });

describe('tasksInFlight', () => {
  it.each([
    // inFlight = tasks − pending − succeeded − failed − cancelled
    { name: 'nothing bound yet: 100 − 100 − 0 = 0', tasks: 100, pending: [[0, 100]], c: counts(), inFlight: 0 },
    { name: '5 bound: 100 − 95 = 5', tasks: 100, pending: [[5, 100]], c: counts(), inFlight: 5 },
    { name: '5 bound, 2 of them done: 100 − 95 − 2 = 3', tasks: 100, pending: [[5, 100]], c: counts(2), inFlight: 3 },
    {
      name: 'a retried task is pending again, not in flight: 100 − (95 + 1) − 2 = 2',
      tasks: 100,
      pending: [
        [3, 4],
        [5, 100],
      ],
      c: counts(2),
      inFlight: 2,
    },
    { name: 'every outcome counts: 10 − 0 − 4 − 3 − 3 = 0', tasks: 10, pending: [], c: counts(4, 3, 3), inFlight: 0 },
    { name: 'a record without counters (an old caller) counts none terminal: 10 − 6 = 4', tasks: 10, pending: [[0, 6]], c: undefined, inFlight: 4 },
  ])('$name', ({ tasks, pending, c, inFlight }) => {
    const job = { spec: spec(tasks), pending: pending.map(([start, end]) => ({ start, end, attempt: 1 })), ...(c ? { counts: c } : {}) };
    expect(tasksInFlight(job)).toBe(inFlight);
  });
});

describe('limitRunning', () => {
  it.each([
    // tasks' = min(tasks, max(0, maxRunning − inFlight)); held = tasks − tasks'
    { name: 'no limit: all 100 placeable', maxRunning: undefined, bound: 0, done: 0, placeable: 100, tasks: 100, held: 0 },
    { name: 'limit 5, none in flight: min(100, 5 − 0) = 5, 95 held', maxRunning: 5, bound: 0, done: 0, placeable: 100, tasks: 5, held: 95 },
    { name: 'limit 5, 3 in flight: min(97, 5 − 3) = 2, 95 held', maxRunning: 5, bound: 3, done: 0, placeable: 97, tasks: 2, held: 95 },
    { name: 'limit 5, 5 in flight: 0 placeable, 95 held', maxRunning: 5, bound: 5, done: 0, placeable: 95, tasks: 0, held: 95 },
    { name: 'limit 5, 5 bound and 2 done: 5 − 3 = 2', maxRunning: 5, bound: 5, done: 2, placeable: 95, tasks: 2, held: 93 },
    { name: 'limit above what is left: min(4, 50 − 0) = 4, nothing held', maxRunning: 50, bound: 96, done: 96, placeable: 4, tasks: 4, held: 0 },
    { name: 'retries in backoff are not placeable, yet not in flight: min(1, 5 − 0) = 1', maxRunning: 5, bound: 0, done: 0, placeable: 1, tasks: 1, held: 0 },
  ])('$name', ({ maxRunning, bound, done, placeable, tasks, held }) => {
    const job = { spec: spec(100, maxRunning), pending: [{ start: bound, end: 100, attempt: 1 }], counts: counts(done) };
    const w = limitRunning(pendingWork('j', placeable, { cpu: 1 }), job);
    expect(w.tasks).toBe(tasks);
    expect(w.runLimit?.held ?? 0).toBe(held);
    if (held) expect(w.runLimit).toEqual({ limit: maxRunning, running: bound - done, held });
  });

  it('does not change the work it is given', () => {
    const w = pendingWork('j', 10, { cpu: 1 });
    limitRunning(w, { spec: spec(10, 2), pending: [{ start: 0, end: 10, attempt: 1 }], counts: counts() });
    expect(w.tasks).toBe(10);
    expect(w.runLimit).toBeUndefined();
  });
});

describe('runLimitMessage', () => {
  it.each([
    { name: 'nothing held: no line', runLimit: undefined, line: undefined },
    { name: 'at the limit', runLimit: { limit: 50, running: 50, held: 950 }, line: 'at its limit of 50 running tasks (maxRunning): 950 tasks wait for a slot' },
    {
      name: 'one slot, one waiting',
      runLimit: { limit: 1, running: 1, held: 1 },
      line: 'at its limit of 1 running task (maxRunning): 1 task waits for a slot',
    },
    {
      name: 'under the limit, the rest held',
      runLimit: { limit: 5, running: 3, held: 90 },
      line: 'near its limit of 5 running tasks (maxRunning; 3 bound or running): 90 tasks wait for a slot',
    },
  ])('$name', ({ runLimit, line }) => {
    expect(runLimitMessage({ ...(runLimit ? { runLimit } : {}) })).toBe(line);
  });
});
