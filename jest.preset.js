// Shared jest settings: @swc/jest transforms TypeScript and the ESM-only dependencies
// (Nest 12, @kubernetes/client-node, node-pg-migrate, @fastify/static's content-disposition) so the suites run in CommonJS mode.
const path = require('node:path');
const root = __dirname;
module.exports = (name, dir) => ({
  displayName: name,
  rootDir: dir,
  testEnvironment: 'node',
  testTimeout: 60000,
  // Each module gets these as parameters of its wrapper: looked up in the test's vm context instead,
  // every use of a global goes through the context's interceptor (jestjs/jest#5163, nodejs/node#31658):
  // `tasksThatFit` (Math, Number) ran 3 million times in 7.95 s here, against 0.16 s in plain Node, and
  // the scheduling, simulation and bench suites took ~235 s of CI time, ~125 s with these. Only
  // built-ins nothing replaces: never Date, performance, process or the timers, which jest's fake
  // timers replace (a module holding the real one would not see the fake).
  sandboxInjectedGlobals: [
    'Math',
    'Number',
    'Object',
    'Array',
    'JSON',
    'Map',
    'Set',
    'WeakMap',
    'String',
    'Symbol',
    'Boolean',
    'Reflect',
    'Promise',
    'Error',
    'TypeError',
    'RangeError',
    'RegExp',
    'BigInt',
    'Buffer',
    'ArrayBuffer',
    'DataView',
    'Uint8Array',
    'Uint16Array',
    'Uint32Array',
    'Int32Array',
    'Float64Array',
    'parseInt',
    'parseFloat',
    'isNaN',
  ],
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
  transform: {
    '^.+\\.(t|j|mj)s$': [
      '@swc/jest',
      { jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } },
    ],
  },
  transformIgnorePatterns: [
    'node_modules/(?!(@nestjs|@kubernetes/client-node|openid-client|oauth4webapi|jose|file-type|load-esm|uid|node-pg-migrate|content-disposition)/)',
  ],
  moduleNameMapper: {
    '^@batchapi/(api|lifecycle|proc|store|history|blobs|scheduling|simulation|telemetry|sdk|runtime|workflows)$': path.join(root, 'libs/$1/src/index.ts'),
    '^@batchapi/(admission|quota|scheduler|executor|cli)$': path.join(root, 'apps/$1/src/index.ts'),
  },
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
});
