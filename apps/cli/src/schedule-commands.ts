/**
 * `batch schedules list|get|create|delete|pause|resume|trigger`: cron jobs and cron workflows
 * (docs/workflows.md, "Schedules").
 */
import type { CreateScheduleRequest, ScheduleView } from '@batchapi/api';
import type { BatchClient } from '@batchapi/sdk';
import type { Command } from 'commander';
import { isData, type OutputFormat, printData, table } from './output';
import { outputOption, readRequestFile, wholeNumber } from './submit-args';

// commander hands each action its own argument list
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Run = (fn: (...a: any[]) => Promise<number | void>) => (...a: any[]) => Promise<void>;

const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

/** One line per schedule: name, cron and zone, policy, state, last tick, running, missed. */
export function scheduleRows(schedules: readonly ScheduleView[]): string {
  return table(
    ['NAME', 'SCHEDULE', 'TIMEZONE', 'KIND', 'POLICY', 'SUSPENDED', 'LAST TICK', 'ACTIVE', 'MISSED'],
    schedules.map((s) => [
      s.name,
      s.schedule,
      s.timeZone,
      s.kind,
      s.concurrencyPolicy,
      s.suspend ? 'yes' : 'no',
      when(s.lastFiredTick),
      String(s.active.length),
      String(s.missedTicks),
    ]),
  );
}

/** A schedule in full, as `batch schedules get` prints it. */
export function scheduleDetail(s: ScheduleView): string {
  const refs = (xs: ScheduleView['active']) =>
    xs.length ? xs.map((i) => `${i.id}${i.phase ? ` ${i.phase}` : ''}${i.manual ? ' (manual)' : ''}`).join(', ') : '-';
  return [
    `name:               ${s.name} (tenant ${s.tenant})`,
    `schedule:           ${s.schedule} ${s.timeZone} — a ${s.kind} per tick`,
    `concurrency:        ${s.concurrencyPolicy}${s.startingDeadlineSeconds !== null ? `, starting deadline ${s.startingDeadlineSeconds} s` : ''}`,
    `suspended:          ${s.suspend ? 'yes' : 'no'}${s.triggerRequestedAt !== null ? ' (a trigger-now is pending)' : ''}`,
    `last tick fired:    ${when(s.lastFiredTick)}`,
    `missed ticks:       ${s.missedTicks}${s.lastMissedTick !== null ? ` (last ${when(s.lastMissedTick)})` : ''}`,
    `active:             ${refs(s.active)}`,
    `recent succeeded:   ${refs(s.succeeded)}`,
    `recent failed:      ${refs(s.failed)}`,
    '',
  ].join('\n');
}

/** `batch schedules …`. */
export function defineSchedules(program: Command, client: () => BatchClient, run: Run): void {
  const sc = program.command('schedules').alias('schedule').description('schedules: cron jobs and cron workflows (docs/workflows.md)');
  const show = (s: ScheduleView, output: OutputFormat): void => {
    if (isData(output)) printData(s, output);
    else process.stdout.write(scheduleDetail(s));
  };
  sc.command('list')
    .description('list schedules')
    .option('--limit <n>', 'at most this many (1–1000)', wholeNumber(1), 100)
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (o: { limit: number; tenant?: string; output: OutputFormat }) => {
        const schedules = await client().schedules.list({ limit: o.limit, tenant: o.tenant });
        if (isData(o.output)) printData({ schedules }, o.output);
        else process.stdout.write(scheduleRows(schedules));
      }),
    );
  sc.command('get')
    .description('show a schedule: cron, policy, last tick, missed ticks, running and recent instances')
    .argument('<name>')
    .option('--tenant <name>', "another tenant's (operators)")
    .addOption(outputOption())
    .action(
      run(async (name: string, o: { tenant?: string; output: OutputFormat }) => show(await client().schedules.get(name, { tenant: o.tenant }), o.output)),
    );
  sc.command('create')
    .description('create a schedule from a YAML or JSON file (- for stdin): the body of POST /v1/schedules')
    .requiredOption('-f, --file <path>', 'the schedule: name, schedule, timeZone, concurrencyPolicy…, and job or workflow')
    .addOption(outputOption())
    .action(
      run(async (o: { file: string; output: OutputFormat }) => {
        const s = await client().schedules.create(readRequestFile<CreateScheduleRequest>(o.file));
        if (isData(o.output)) printData(s, o.output);
        else process.stdout.write(`${s.name} created\n`);
      }),
    );
  for (const [action, description, done] of [
    ['delete', 'delete a schedule (the jobs and workflows it started stay)', 'deleted'],
    ['pause', 'pause a schedule: no tick fires until resumed', 'paused'],
    ['resume', 'resume a schedule from now: the ticks of the pause never fire', 'resumed'],
    ['trigger', 'start one instance now, whatever the cron and the policy', 'triggered'],
  ] as const) {
    sc.command(action)
      .description(description)
      .argument('<name>')
      .option('--tenant <name>', "another tenant's (operators)")
      .addOption(outputOption())
      .action(
        run(async (name: string, o: { tenant?: string; output: OutputFormat }) => {
          const s = await client().schedules[action](name, { tenant: o.tenant });
          if (isData(o.output)) printData(s, o.output);
          else process.stdout.write(`${s.name} ${done}\n`);
        }),
      );
  }
}
