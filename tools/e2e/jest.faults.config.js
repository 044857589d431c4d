// `npm run -s test:faults`: every fault scenario, one after another on one fault cluster.
const base = require('../../jest.preset.js')('faults', __dirname);
module.exports = { ...base, testMatch: ['<rootDir>/faults/**/*.spec.ts'], testTimeout: 600000 };
