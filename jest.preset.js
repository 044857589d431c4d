// Shared jest settings: @swc/jest transforms TypeScript and the ESM-only dependencies
// (Nest 12, @kubernetes/client-node, node-pg-migrate, @fastify/static's content-disposition) so the suites run in CommonJS mode.
const path = require('node:path');
const root = __dirname;
module.exports = (name, dir) => ({
  displayName: name,
  rootDir: dir,
  testEnvironment: 'node',
  testTimeout: 60000,
  // Each module gets these built-ins as parameters of its wrapper. Looked up in the test's vm context
  // instead, every use of a global goes through the context's interceptor (jestjs/jest#5163,
  // nodejs/node#31658): `tasksThatFit` (Math, Number) ran 3 million times in 7.95 s here, against
  // 0.16 s in plain Node. Two rules for this list: never a global jest's fake timers replace or patch
  // (Date, performance, process, the timers: a module would keep the real one), and never a name some
  // loaded module declares at its top level with const, let or class (a parameter of that name makes
  // it a SyntaxError, "Identifier 'X' has already been declared": @pkgjs/parseargs declares Map, Set
  // and WeakMap, undici and others Buffer, typebox Array, Promise and Uint8Array, kubernetes-models
  // JSON). A `var` or a function of the name is legal beside the parameter (typebox's `Number`).
  sandboxInjectedGlobals: [
    'Math',
    'Number',
    'Object',
    'Reflect',
    'Error',
    'TypeError',
    'RangeError',
    'ArrayBuffer',
    'DataView',
    'Int32Array',
    'Uint32Array',
    'Float32Array',
    'Float64Array',
    'parseInt',
    'parseFloat',
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
