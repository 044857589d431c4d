// `npm run -s test:faults`: every fault scenario, one after another on one fault cluster.
const base = require('../../jest.preset.js')('faults', __dirname);
// The nemesis spec has its own config (jest.nemesis.config.js): `--nemesis` runs it.
module.exports = {
  ...base,
  testMatch: ['<rootDir>/faults/**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/faults/nemesis\\.spec\\.ts$'],
  testTimeout: 600000,
};
