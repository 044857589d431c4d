import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectTaskIndex, MAX_CANCEL_TASK_FLAGS, parseSubmitArgv, submitRequest, UsageError } from './submit-args';

describe('batch submit argv → SubmitJobRequest', () => {
  it.each<[string, string[], object]>([
    ['a bare command after --', ['--', 'echo', 'hi'], { command: ['echo', 'hi'] }],
    ['options of the command stay its own after --', ['--', 'ls', '-la', '--tasks', '3'], { command: ['ls', '-la', '--tasks', '3'] }],
    [
      'an array job with resources',
      ['--tasks', '8', '--cpu', '500m', '--memory', '1Gi', '--', 'run'],
      { command: ['run'], tasks: 8, resources: { cpu: '500m', memory: '1Gi' } },
    ],
    [
      'an array job of 1000 tasks, at most 50 at once',
      ['--tasks', '1000', '--max-running', '50', '--', 'run'],
      { command: ['run'], tasks: 1000, maxRunning: 50 },
    ],
    [
      'locks and semaphore units',
      ['--lock', 'dataset/lidar', '--lock', 'global/gpu', '--limit', 'db/warehouse-conn=2', '--', 'load'],
      { command: ['load'], locks: ['dataset/lidar', 'global/gpu'], limits: { 'db/warehouse-conn': 2 } },
    ],
    ['a GPU share is a number', ['--gpu', '0.5', '--', 'train'], { command: ['train'], resources: { gpu: 0.5 } }],
    [
      '--env and --label repeat; a value may hold "="',
      ['--env', 'A=1', '--env', 'B=x=y', '--label', 'team=ml', '--', 'x'],
      { command: ['x'], env: { A: '1', B: 'x=y' }, labels: { team: 'ml' } },
    ],
    ['a variadic option takes several pairs at once', ['--env', 'A=1', 'B=2', '--', 'x'], { command: ['x'], env: { A: '1', B: '2' } }],
    [
      'queue, negative priority, name',
      ['--queue', 'q', '--priority', '-3', '--name', 'nightly', '--', 'x'],
      { command: ['x'], queue: 'q', priority: -3, name: 'nightly' },
    ],
    [
      'placement: selector, gang, spread',
      ['--selector', 'gpu.model=A100', '--gang', '--spread', '--', 'x'],
      { command: ['x'], selector: { 'gpu.model': 'A100' }, gang: true, spread: true },
    ],
    ['retries and deadline', ['--attempts', '3', '--timeout', '600', '--', 'x'], { command: ['x'], retry: { maxAttempts: 3 }, timeoutSeconds: 600 }],
    ['topology: a gang in one rack', ['--gang', '--topology-required', 'rack', '--', 'x'], { command: ['x'], gang: true, topology: { required: 'rack' } }],
  ])('%s', (_name, argv, request) => {
    expect(parseSubmitArgv(argv).request).toEqual(request);
  });

  it('carries the idempotency key, --wait and -o json beside the request', () => {
    expect(parseSubmitArgv(['--idempotency-key', 'k-1', '--wait', '-o', 'json', '--', 'true'])).toEqual({
      request: { command: ['true'] },
      idempotencyKey: 'k-1',
      wait: true,
      output: 'json',
    });
    // defaults: a new key per submit (chosen by the SDK), no wait, a table
    expect(parseSubmitArgv(['--', 'true'])).toEqual({ request: { command: ['true'] }, idempotencyKey: undefined, wait: false, output: 'table' });
  });

  it.each<[string, string[], string]>([
    ['no command', [], 'give the command after --'],
    ['a missing file', ['-f', '/nonexistent/job.yaml'], 'cannot read /nonexistent/job.yaml'],
    ['tasks not a number', ['--tasks', 'many', '--', 'x'], '--tasks takes a whole number, got "many"'],
    ['max-running not a number', ['--max-running', 'half', '--', 'x'], '--max-running takes a whole number, got "half"'],
    ['a limit without units', ['--limit', 'db', '--', 'x'], '--limit takes KEY=VALUE, got "db"'],
    ['a limit of no number', ['--limit', 'db=two', '--', 'x'], '--limit db takes a whole number, got "two"'],
    ['priority not whole', ['--priority', '1.5', '--', 'x'], '--priority takes a whole number, got "1.5"'],
    ['gpu not a number', ['--gpu', 'one', '--', 'x'], '--gpu takes a number of GPUs, got "one"'],
    ['env without =', ['--env', 'NOPE', '--', 'x'], '--env takes KEY=VALUE, got "NOPE"'],
    ['label with an empty key', ['--label', '=v', '--', 'x'], '--label takes KEY=VALUE, got "=v"'],
    ['an unknown option', ['--cpus', '2', '--', 'x'], "unknown option '--cpus'"],
    ['a bad output format', ['-o', 'xml', '--', 'x'], "argument 'xml' is invalid"],
    ['a working dir bound of 0 MiB', ['--working-dir', '.', '--working-dir-max-mib', '0', '--', 'x'], 'must be a positive number of MiB'],
  ])('%s is a usage error', (_name, argv, message) => {
    expect(() => parseSubmitArgv(argv)).toThrow(UsageError);
    expect(() => parseSubmitArgv(argv)).toThrow(message);
  });

  it('takes the request from a YAML or JSON file, flags and a command after -- over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'submit-f-'));
    try {
      writeFileSync(join(dir, 'job.yaml'), 'name: from-file\ncommand: [echo, hi]\ntasks: 4\nresources: { cpu: 500m, memory: 1Gi }\nitems: [a, b, c, d]\n');
      writeFileSync(join(dir, 'job.json'), JSON.stringify({ command: ['true'], priority: 5 }));
      writeFileSync(join(dir, 'list.yaml'), '- 1\n');
      expect(parseSubmitArgv(['-f', join(dir, 'job.yaml')]).request).toEqual({
        name: 'from-file',
        command: ['echo', 'hi'],
        tasks: 4,
        resources: { cpu: '500m', memory: '1Gi' },
        items: ['a', 'b', 'c', 'd'],
      });
      // --cpu overrides one resource and keeps the other; the command after -- replaces the file's.
      expect(parseSubmitArgv(['-f', join(dir, 'job.yaml'), '--cpu', '2', '--', 'run']).request).toMatchObject({
        command: ['run'],
        resources: { cpu: '2', memory: '1Gi' },
      });
      expect(parseSubmitArgv(['-f', join(dir, 'job.json')]).request).toEqual({ command: ['true'], priority: 5 });
      expect(() => parseSubmitArgv(['-f', join(dir, 'list.yaml')])).toThrow('must hold an object');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an empty command even when called directly', () => {
    expect(() => submitRequest([], {})).toThrow('give the command after --');
  });
});

describe('batch cancel --task', () => {
  it('collects task indices once each, refuses what is not one and more than the bound', () => {
    // --task 3 --task 0 --task 3: [3, 0], the repeat dropped
    expect(['3', '0', '3'].reduce((acc: number[], v) => collectTaskIndex(v, acc), [])).toEqual([3, 0]);
    for (const bad of ['-1', 'x', '1.5', '']) expect(() => collectTaskIndex(bad, [])).toThrow('must be a whole number');
    const full = Array.from({ length: MAX_CANCEL_TASK_FLAGS }, (_, i) => i);
    expect(() => collectTaskIndex('5000', full)).toThrow(`at most ${MAX_CANCEL_TASK_FLAGS} tasks`);
  });
});
