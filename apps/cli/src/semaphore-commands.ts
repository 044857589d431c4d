/**
 * `batch semaphores list|get|put|delete`: named semaphores (capacities that jobs' `limits` take
 * units of) and the mutexes of jobs' `locks` (docs/workflows.md, "Locks and limits").
 */
import type { SemaphoreView } from '@batchapi/api';
import type { BatchClient } from '@batchapi/sdk';
import type { Command } from 'commander';
import { isData, type OutputFormat, printData, table } from './output';
import { outputOption, wholeNumber } from './submit-args';

// commander hands each action its own argument list
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Run = (fn: (...a: any[]) => Promise<number | void>) => (...a: any[]) => Promise<void>;

/** One line per semaphore or mutex: name, kind, tenant, held of capacity, waiting tasks, the first holders. */
export function semaphoreRows(semaphores: readonly SemaphoreView[]): string {
  return table(
    ['NAME', 'KIND', 'TENANT', 'HELD', 'WAITING', 'HOLDERS'],
    semaphores.map((s) => [
      s.name,
      s.mutex ? 'lock' : 'semaphore',
      s.tenant ?? '(global)',
      `${s.held}/${s.capacity}`,
      String(s.waitingTasks),
      s.holders.length ? s.holders.map((h) => `${h.jobId}×${h.units}`).join(', ') : '-',
    ]),
  );
}

/** `batch semaphores …`. */
export function defineSemaphores(program: Command, client: () => BatchClient, run: Run): void {
  const sc = program.command('semaphores').alias('semaphore').description('semaphores and locks: limits and mutexes shared by jobs (docs/workflows.md)');
  const show = (s: SemaphoreView, output: OutputFormat): void => {
    if (isData(output)) printData(s, output);
    else process.stdout.write(semaphoreRows([s]));
  };
  sc.command('list')
    .description("list your tenant's semaphores, the global ones, and the locks held or awaited")
    .addOption(outputOption())
    .action(
      run(async (o: { output: OutputFormat }) => {
        const semaphores = await client().semaphores.list();
        if (isData(o.output)) printData({ semaphores }, o.output);
        else process.stdout.write(semaphoreRows(semaphores));
      }),
    );
  sc.command('get')
    .description('show a semaphore (or --lock, a mutex): units held of its capacity, the jobs holding them, the tasks waiting')
    .argument('<name>')
    .option('--lock', 'the lock (mutex) of that name')
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (name: string, o: { lock?: boolean; tenant?: string; output: OutputFormat }) =>
        show(await client().semaphores.get(name, { tenant: o.tenant, mutex: !!o.lock }), o.output),
      ),
    );
  sc.command('put')
    .description('create a semaphore or change its capacity (lowering it stops nothing running); global/… names: operators')
    .argument('<name>')
    .requiredOption('--capacity <n>', 'units handed out at once (1 to 100000)', wholeNumber(1))
    .option('--description <text>', 'what it guards')
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (name: string, o: { capacity: number; description?: string; tenant?: string; output: OutputFormat }) =>
        show(
          await client().semaphores.put(name, {
            capacity: o.capacity,
            ...(o.description !== undefined ? { description: o.description } : {}),
            ...(o.tenant ? { tenant: o.tenant } : {}),
          }),
          o.output,
        ),
      ),
    );
  sc.command('delete')
    .description('delete a semaphore: tasks holding units run on, waiting ones wait until it exists again')
    .argument('<name>')
    .option('--tenant <name>', "another tenant's (operators)")
    .action(
      run(async (name: string, o: { tenant?: string }) => {
        await client().semaphores.delete(name, { tenant: o.tenant });
        process.stdout.write(`${name} deleted\n`);
      }),
    );
}
