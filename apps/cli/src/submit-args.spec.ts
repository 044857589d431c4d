import { submitRequest, UsageError } from './submit-args';

describe('submitRequest', () => {
  it.each([
    ['bare command', ['echo', 'hi'], {}, { command: ['echo', 'hi'] }],
    ['array job with resources', ['run'], { tasks: '8', cpu: '500m', memory: '1Gi', gpu: '0.5' }, { command: ['run'], tasks: 8, resources: { cpu: '500m', memory: '1Gi', gpu: 0.5 } }],
    ['env, labels, selector, gang', ['x'], { env: ['A=1', 'B=x=y'], label: ['team=ml'], selector: ['gpu.model=A100'], gang: true, queue: 'q', priority: '-3' },
      { command: ['x'], env: { A: '1', B: 'x=y' }, labels: { team: 'ml' }, selector: { 'gpu.model': 'A100' }, gang: true, queue: 'q', priority: -3 }],
  ])('%s', (_n, command, flags, expected) => {
    expect(submitRequest(command, flags)).toEqual(expected);
  });

  it.each([
    ['no command', [], {}, 'give the command'],
    ['tasks not a number', ['x'], { tasks: 'many' }, '--tasks takes a whole number'],
    ['env without =', ['x'], { env: ['NOPE'] }, '--env takes KEY=VALUE'],
  ])('%s is a usage error', (_n, command, flags, message) => {
    expect(() => submitRequest(command as string[], flags)).toThrow(UsageError);
    expect(() => submitRequest(command as string[], flags)).toThrow(message);
  });
});
