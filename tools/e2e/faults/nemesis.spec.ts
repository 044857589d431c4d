/**
 * The full nemesis (`npm run -s test:faults -- --nemesis --minutes 10 [--seed N] [--rate 200]`):
 * `NEMESIS_SEED`, `NEMESIS_MINUTES` and `NEMESIS_RATE` come from the runner (tools/e2e/faults/cli.js).
 */
import { failures } from './checker';
import { type FaultName, runNemesis } from './nemesis';

const seed = Number(process.env.NEMESIS_SEED ?? 1);
const minutes = Number(process.env.NEMESIS_MINUTES ?? 10);
const rate = Number(process.env.NEMESIS_RATE ?? 200);

it(
  `nemesis seed ${seed}, ${minutes} min at ${rate} submits/s: nothing lost, stuck or run twice; never over quota, capacity or with two leaders`,
  async () => {
    const { report, evidence } = await runNemesis({
      seed,
      minutes,
      rate,
      faults: process.env.NEMESIS_FAULTS?.split(',').filter(Boolean) as FaultName[] | undefined,
    });
    console.log(`nemesis seed ${seed}:\n${evidence.join('\n') || 'no problems'}`);
    expect(failures(report.row)).toEqual([]);
    expect(report.row.accepted).toBeGreaterThan(0);
  },
  (minutes * 60 + 900) * 1000,
);
