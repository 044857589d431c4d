// Shared jest settings: @swc/jest transforms TypeScript and the ESM-only dependencies
// (Nest 12, @kubernetes/client-node, node-pg-migrate, @fastify/static's content-disposition) so the suites run in CommonJS mode.
const path = require('node:path');
const root = __dirname;
module.exports = (name, dir) => ({
  displayName: name,
  rootDir: dir,
  testEnvironment: 'node',
  testTimeout: 60000,
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
