// `npm run -s test:faults -- --nemesis`: the randomized nemesis run (tools/e2e/faults/nemesis.ts), one spec.
const base = require('../../jest.preset.js')('nemesis', __dirname);
module.exports = { ...base, testMatch: ['<rootDir>/faults/nemesis.spec.ts'], testTimeout: 3600000 };
