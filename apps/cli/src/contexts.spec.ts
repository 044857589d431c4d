import {
  type CliContext,
  ContextError,
  type ContextsFile,
  deleteContext,
  forgetContext,
  parseContextsFile,
  resolveContext,
  type Role,
  type SettingsFlags,
  setContext,
  useContext,
} from './contexts';

const dev: CliContext = { api: 'http://dev', token: 'dev-t', operatorToken: 'dev-op' };
const prod: CliContext = { api: 'https://prod', token: 'prod-t' };
const FILE: ContextsFile = { currentContext: 'dev', contexts: { dev, prod } };

describe('resolveContext: flags over environment over the selected context', () => {
  it.each<[string, ContextsFile, SettingsFlags, NodeJS.ProcessEnv, Role, object | undefined]>([
    // name, file, flags, env, the command's role → api, token, context
    ['the selected context, as a tenant', FILE, {}, {}, 'tenant', { api: 'http://dev', token: 'dev-t', context: 'dev' }],
    ['an operator command takes the operator token', FILE, {}, {}, 'operator', { api: 'http://dev', token: 'dev-op', context: 'dev' }],
    ['--as operator makes a tenant command an operator one', FILE, { as: 'operator' }, {}, 'tenant', { api: 'http://dev', token: 'dev-op', context: 'dev' }],
    ['--as tenant makes an operator command a tenant one', FILE, { as: 'tenant' }, {}, 'operator', { api: 'http://dev', token: 'dev-t', context: 'dev' }],
    [
      'a context without an operator token gives its token to an operator',
      FILE,
      { context: 'prod' },
      {},
      'operator',
      { api: 'https://prod', token: 'prod-t', context: 'prod' },
    ],
    ['--context picks another context', FILE, { context: 'prod' }, {}, 'tenant', { api: 'https://prod', token: 'prod-t', context: 'prod' }],
    ['BATCH_CONTEXT picks another context', FILE, {}, { BATCH_CONTEXT: 'prod' }, 'tenant', { api: 'https://prod', token: 'prod-t', context: 'prod' }],
    ['--context wins over BATCH_CONTEXT', FILE, { context: 'dev' }, { BATCH_CONTEXT: 'prod' }, 'tenant', { api: 'http://dev', token: 'dev-t', context: 'dev' }],
    [
      'BATCH_API overrides the context URL, its token stays',
      FILE,
      {},
      { BATCH_API: 'http://env' },
      'tenant',
      { api: 'http://env', token: 'dev-t', context: 'dev' },
    ],
    ['BATCH_TOKEN overrides the tenant token', FILE, {}, { BATCH_TOKEN: 'env-t' }, 'tenant', { api: 'http://dev', token: 'env-t', context: 'dev' }],
    // the environment layer has a token for the operator (BATCH_TOKEN), so it wins over the context's operator token
    ['BATCH_TOKEN overrides the operator token too', FILE, {}, { BATCH_TOKEN: 'env-t' }, 'operator', { api: 'http://dev', token: 'env-t', context: 'dev' }],
    [
      'BATCH_OPERATOR_TOKEN is the operator one',
      FILE,
      {},
      { BATCH_TOKEN: 'env-t', BATCH_OPERATOR_TOKEN: 'env-op' },
      'operator',
      { api: 'http://dev', token: 'env-op', context: 'dev' },
    ],
    [
      'BATCH_OPERATOR_TOKEN is not a tenant token',
      FILE,
      {},
      { BATCH_OPERATOR_TOKEN: 'env-op' },
      'tenant',
      { api: 'http://dev', token: 'dev-t', context: 'dev' },
    ],
    [
      '--api and --token win over everything',
      FILE,
      { api: 'http://flag', token: 'flag-t' },
      { BATCH_API: 'http://env', BATCH_TOKEN: 'env-t' },
      'operator',
      { api: 'http://flag', token: 'flag-t', context: 'dev' },
    ],
    [
      'an empty variable counts as unset',
      FILE,
      {},
      { BATCH_API: '', BATCH_TOKEN: '', BATCH_CONTEXT: '' },
      'tenant',
      { api: 'http://dev', token: 'dev-t', context: 'dev' },
    ],
    [
      'the environment alone, no file',
      { contexts: {} },
      {},
      { BATCH_API: 'http://env', BATCH_TOKEN: 'env-t' },
      'tenant',
      { api: 'http://env', token: 'env-t' },
    ],
    ['nothing names an API', { contexts: {} }, {}, {}, 'tenant', undefined],
    ['contexts but none selected', { contexts: { prod } }, {}, {}, 'tenant', undefined],
    ['a URL without a token is not enough', { contexts: {} }, {}, { BATCH_API: 'http://env' }, 'tenant', undefined],
  ])('%s', (_name, file, flags, env, role, expected) => {
    expect(resolveContext(file, flags, env, role)).toEqual(expected);
  });

  it.each<[string, ContextsFile, SettingsFlags, NodeJS.ProcessEnv, string]>([
    ['--context', FILE, { context: 'staging' }, {}, '--context'],
    ['BATCH_CONTEXT', FILE, {}, { BATCH_CONTEXT: 'staging' }, 'BATCH_CONTEXT'],
  ])('a missing context named by %s is unknown_context, naming where it came from', (_name, file, flags, env, field) => {
    expect(() => resolveContext(file, flags, env)).toThrow(expect.objectContaining({ code: 'unknown_context', field }));
    expect(() => resolveContext(file, flags, env)).toThrow(`no context "staging" (from ${field})`);
  });
});

describe('setContext', () => {
  it('creates a context, keeping the selection', () => {
    expect(setContext(FILE, 'staging', { api: 'https://staging', token: 's-t' })).toEqual({
      file: { currentContext: 'dev', contexts: { dev, prod, staging: { api: 'https://staging', token: 's-t' } } },
      created: true,
    });
  });

  it('changes only the fields given', () => {
    const { file, created } = setContext(FILE, 'prod', { operatorToken: 'prod-op' });
    expect(created).toBe(false);
    expect(file.contexts.prod).toEqual({ api: 'https://prod', token: 'prod-t', operatorToken: 'prod-op' });
  });

  it.each<[string, string, Partial<CliContext>, string, string]>([
    // name, context name, fields → code, field
    ['a new context without a token', 'staging', { api: 'https://s' }, 'missing_field', '--token'],
    ['a new context without a URL', 'staging', { token: 't' }, 'missing_field', '--api'],
    ['a URL that is not http(s)', 'staging', { api: 'ftp://s', token: 't' }, 'invalid_api_url', '--api'],
    ['a URL that is not one', 'prod', { api: 'prod.example.com' }, 'invalid_api_url', '--api'],
    ['a name with a slash', 'a/b', { api: 'https://s', token: 't' }, 'invalid_context_name', 'NAME'],
    ['an empty name', '', { api: 'https://s', token: 't' }, 'invalid_context_name', 'NAME'],
  ])('refuses %s', (_what, name, fields, code, field) => {
    expect(() => setContext(FILE, name, fields)).toThrow(expect.objectContaining({ code, field }));
  });
});

describe('useContext and deleteContext', () => {
  it('use-context selects an existing context', () => {
    expect(useContext(FILE, 'prod')).toEqual({ currentContext: 'prod', contexts: { dev, prod } });
  });

  it('use-context and delete-context refuse a context the file lacks', () => {
    expect(() => useContext(FILE, 'staging')).toThrow(ContextError);
    expect(() => deleteContext(FILE, 'staging')).toThrow(expect.objectContaining({ code: 'unknown_context' }));
  });

  it('deleting the selected context leaves none selected; another keeps the selection', () => {
    expect(deleteContext(FILE, 'dev')).toEqual({ contexts: { prod } });
    expect(deleteContext(FILE, 'prod')).toEqual({ currentContext: 'dev', contexts: { dev } });
  });
});

describe('forgetContext: what a stopping batch dev leaves', () => {
  it.each<[string, ContextsFile, CliContext, string | undefined, ContextsFile]>([
    // name, file, the dev context it wrote, the context selected before it → file after
    ['its context goes, the earlier selection comes back', FILE, dev, 'prod', { currentContext: 'prod', contexts: { prod } }],
    ['no earlier selection: none selected', FILE, dev, undefined, { contexts: { prod } }],
    ['the earlier selection was a dev context itself (a crashed run): none selected', FILE, dev, 'dev', { contexts: { prod } }],
    ['the earlier selection no longer exists: none selected', FILE, dev, 'staging', { contexts: { prod } }],
    ['another batch dev rewrote it since: left alone', FILE, { ...dev, token: 'other' }, 'prod', FILE],
    [
      'not selected any more: removed, the selection kept',
      { currentContext: 'prod', contexts: { dev, prod } },
      dev,
      undefined,
      { currentContext: 'prod', contexts: { prod } },
    ],
  ])('%s', (_name, file, ctx, previous, expected) => {
    expect(forgetContext(file, 'dev', ctx, previous)).toEqual(expected);
  });
});

describe('parseContextsFile', () => {
  it.each<[string, unknown, ContextsFile]>([
    ['the file as it is written', FILE, FILE],
    [
      'the file batch dev wrote before contexts is a context named default',
      { api: 'http://old', token: 'old-t' },
      { currentContext: 'default', contexts: { default: { api: 'http://old', token: 'old-t' } } },
    ],
    ['a context without a token is left out', { contexts: { a: { api: 'http://a' }, prod } }, { contexts: { prod } }],
    ['a selection of a context the file lacks selects none', { currentContext: 'staging', contexts: { prod } }, { contexts: { prod } }],
    ['not an object: no contexts', 'nonsense', { contexts: {} }],
  ])('%s', (_name, json, expected) => {
    expect(parseContextsFile(json)).toEqual(expected);
  });
});
