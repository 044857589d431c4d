/** Every fault scenario (`npm run -s test:faults`); see scenarios.ts and docs/reliability.md. */
import { faultSuite } from './run-scenarios';
import { SCENARIOS } from './scenarios';

faultSuite(SCENARIOS);
