/** Every fault scenario (`npm run -s test:faults`; `FAULTS=text` runs those whose name has it); see scenarios.ts and docs/reliability.md. */
import { faultSuite } from './run-scenarios';
import { SCENARIOS } from './scenarios';

faultSuite(process.env.FAULTS ? SCENARIOS.filter((s) => s.name.includes(process.env.FAULTS!)) : SCENARIOS);
