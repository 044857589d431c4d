// ESLint for the whole workspace (`npm run -s lint`, part of `npm test`): typescript-eslint's
// recommended rules, type-aware rules for promises on production code, and Nx module
// boundaries — the project graph of docs/architecture.md, enforced (tags in each package.json).
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// The type-aware rules' programs: one for every production file but the console's (tsconfig.eslint.json),
// and the console's own (DOM, bundler resolution). One program per package (~20) parsed @types/node,
// the standard library and every dependency's types once each: 81 s of ESLint here, 44 s with two.
const projects = ['tsconfig.eslint.json', 'apps/console/tsconfig.lib.json'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'sdk/**', 'deploy/**', 'examples/**', '**/*.d.ts', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      // What the project graph may be (docs/architecture.md): pure libraries know only the
      // vocabulary; only the store talks to etcd; services never import each other.
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          // the executor finds its own watchdog script next to its package.json
          allow: ['@batchapi/executor/package.json'],
          // tests load services with dynamic import(); that does not make them lazy-loaded libraries
          checkDynamicDependenciesExceptions: ['@batchapi/*'],
          depConstraints: [
            { sourceTag: 'type:vocabulary', onlyDependOnLibsWithTags: ['type:vocabulary'] },
            { sourceTag: 'type:telemetry', onlyDependOnLibsWithTags: ['type:telemetry'] },
            { sourceTag: 'type:proc', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'type:lifecycle', onlyDependOnLibsWithTags: ['type:vocabulary'] },
            { sourceTag: 'type:pure', onlyDependOnLibsWithTags: ['type:vocabulary', 'type:lifecycle', 'type:pure'] },
            { sourceTag: 'type:store', onlyDependOnLibsWithTags: ['type:vocabulary', 'type:lifecycle', 'type:proc'] },
            { sourceTag: 'type:history', onlyDependOnLibsWithTags: ['type:vocabulary', 'type:proc'] },
            { sourceTag: 'type:blobs', onlyDependOnLibsWithTags: ['type:vocabulary', 'type:history', 'type:proc'] },
            { sourceTag: 'type:simulation', onlyDependOnLibsWithTags: ['type:vocabulary', 'type:lifecycle', 'type:pure'] },
            { sourceTag: 'type:sdk', onlyDependOnLibsWithTags: ['type:vocabulary'] },
            // the console reads the API's types only: it runs in a browser, talking to /v1
            { sourceTag: 'type:console', onlyDependOnLibsWithTags: ['type:vocabulary'] },
            {
              sourceTag: 'type:runtime',
              onlyDependOnLibsWithTags: ['type:vocabulary', 'type:lifecycle', 'type:proc', 'type:store', 'type:history', 'type:blobs', 'type:telemetry'],
            },
            {
              sourceTag: 'type:app',
              onlyDependOnLibsWithTags: [
                'type:vocabulary',
                'type:lifecycle',
                'type:proc',
                'type:pure',
                'type:store',
                'type:history',
                'type:blobs',
                'type:telemetry',
                'type:runtime',
                'type:simulation',
                'type:sdk',
              ],
            },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['*'] },
            // only the store imports the etcd client; pure libraries do no I/O
            { sourceTag: 'type:app', bannedExternalImports: ['etcd3'] },
            { sourceTag: 'type:pure', bannedExternalImports: ['etcd3', 'node:fs', 'node:child_process', 'node:net', 'node:http'] },
            { sourceTag: 'type:lifecycle', bannedExternalImports: ['etcd3', 'node:fs', 'node:child_process', 'node:net', 'node:http'] },
            { sourceTag: 'type:runtime', bannedExternalImports: ['etcd3'] },
          ],
        },
      ],
      // a variable a closure reads before it is assigned (a handler wired before its target exists) stays `let`
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Production code: type-aware rules (a promise nobody awaits or marks `void` is a bug).
    files: ['apps/*/src/**/*.ts', 'libs/*/src/**/*.ts', 'tools/bench/src/**/*.ts', 'tools/ops/src/**/*.ts'],
    ignores: ['**/*.spec.ts'],
    languageOptions: { parserOptions: { project: projects, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // Tests may start other services in-process (integration) and use loose types for answers.
    files: ['**/test/**/*.ts', '**/*.spec.ts', 'tools/**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
);
