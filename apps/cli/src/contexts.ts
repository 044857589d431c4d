/**
 * Contexts, like kubectl's: named API endpoints with their tokens, one of them selected, kept
 * in the settings file (settings.ts reads and writes it). This module is the pure part: which
 * API and token a command uses, and how `batch config …` changes the file's contents.
 *
 * Precedence, highest first: flags (`--api`, `--token`, `--context`), then environment
 * variables (`BATCH_API`, `BATCH_TOKEN`, `BATCH_OPERATOR_TOKEN`, `BATCH_CONTEXT`), then the
 * selected context. An empty variable counts as unset.
 */

/** Who a command acts as: operator commands (`nodes`, `drain`, …) need an operator token. */
export type Role = 'tenant' | 'operator';
export const ROLES: readonly Role[] = ['tenant', 'operator'];

/** One named API endpoint with its credentials. */
export interface CliContext {
  /** Base URL of the API, e.g. `http://127.0.0.1:8080`. */
  api: string;
  /** Bearer token of a tenant. */
  token: string;
  /** Bearer token of an operator, used by operator commands and `--as operator`. @default none: operator commands use `token` */
  operatorToken?: string;
}

/** What the settings file holds. */
export interface ContextsFile {
  /** The selected context's name. @default none */
  currentContext?: string;
  contexts: Record<string, CliContext>;
}

/** Where a command's API and token came from, as it resolved them. */
export interface CliSettings {
  api: string;
  token: string;
  /** The context it read, when it read one. */
  context?: string;
}

/** Flags that choose the API, as commander parsed them. */
export interface SettingsFlags {
  api?: string;
  token?: string;
  context?: string;
  /** `--as`: overrides the command's own role. */
  as?: Role;
}

/** A context or its fields are not usable; `field` names the flag or key concerned. */
export class ContextError extends Error {
  constructor(
    readonly code: 'unknown_context' | 'invalid_context_name' | 'invalid_api_url' | 'missing_field',
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/**
 * A settings file's contents in today's shape: `{api, token}` as `batch dev` wrote it before
 * contexts is read as a context named `default`; anything unreadable as no contexts; a context
 * without its URL or token is left out.
 */
export function parseContextsFile(json: unknown): ContextsFile {
  if (!json || typeof json !== 'object') return { contexts: {} };
  const o = json as Record<string, unknown>;
  if (typeof o.api === 'string' && typeof o.token === 'string' && !('contexts' in o))
    return { currentContext: 'default', contexts: { default: { api: o.api, token: o.token } } };
  const contexts: Record<string, CliContext> = {};
  if (o.contexts && typeof o.contexts === 'object') {
    for (const [name, c] of Object.entries(o.contexts as Record<string, Partial<CliContext>>)) {
      if (c && typeof c.api === 'string' && typeof c.token === 'string')
        contexts[name] = { api: c.api, token: c.token, ...(typeof c.operatorToken === 'string' ? { operatorToken: c.operatorToken } : {}) };
    }
  }
  // a selection of a context the file lacks (edited by hand) selects none
  return { ...(typeof o.currentContext === 'string' && contexts[o.currentContext] ? { currentContext: o.currentContext } : {}), contexts };
}

/**
 * The API and token a command uses, or undefined when nothing names an API.
 *
 * The token is taken from the first layer (flags, environment, context) that has one for the
 * role: `--token` serves any role; the environment gives `BATCH_OPERATOR_TOKEN` (else
 * `BATCH_TOKEN`) to an operator and `BATCH_TOKEN` to a tenant; a context its `operatorToken`
 * (else `token`) to an operator and `token` to a tenant.
 * @param role the command's own role; `flags.as` overrides it
 * @throws ContextError `unknown_context` when `--context` or `BATCH_CONTEXT` names a context the file does not have
 */
export function resolveContext(file: ContextsFile, flags: SettingsFlags, env: NodeJS.ProcessEnv, role: Role = 'tenant'): CliSettings | undefined {
  const chosen = flags.context || env.BATCH_CONTEXT || file.currentContext;
  const ctx = chosen ? file.contexts[chosen] : undefined;
  if (chosen && !ctx) {
    const field = flags.context ? '--context' : 'BATCH_CONTEXT';
    throw new ContextError('unknown_context', `no context "${chosen}" (from ${field}): batch config get-contexts lists them`, field);
  }
  const as = flags.as ?? role;
  const envToken = as === 'operator' ? env.BATCH_OPERATOR_TOKEN || env.BATCH_TOKEN : env.BATCH_TOKEN;
  const ctxToken = ctx && (as === 'operator' ? ctx.operatorToken || ctx.token : ctx.token);
  const api = flags.api || env.BATCH_API || ctx?.api;
  const token = flags.token || envToken || ctxToken;
  return api && token ? { api, token, ...(chosen ? { context: chosen } : {}) } : undefined;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * `batch config set-context NAME …`: the file with context `name` created or updated (fields
 * not given keep their value; a new context needs `api` and `token`). The selection is kept.
 * @throws ContextError naming the field that is missing or invalid
 */
export function setContext(file: ContextsFile, name: string, fields: Partial<CliContext>): { file: ContextsFile; created: boolean } {
  if (!NAME.test(name))
    throw new ContextError('invalid_context_name', `"${name}" is not a context name: letters, digits, ".", "_" and "-", at most 63`, 'NAME');
  if (fields.api !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(fields.api);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      throw new ContextError('invalid_api_url', `--api takes an http:// or https:// URL, got "${fields.api}"`, '--api');
  }
  const before = file.contexts[name];
  const merged = { ...before, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== '')) } as Partial<CliContext>;
  for (const f of ['api', 'token'] as const)
    if (!merged[f]) throw new ContextError('missing_field', `a new context needs --${f}: batch config set-context ${name} --api URL --token TOKEN`, `--${f}`);
  return { file: { ...file, contexts: { ...file.contexts, [name]: merged as CliContext } }, created: !before };
}

/**
 * `batch config use-context NAME`: the file with `name` selected.
 * @throws ContextError `unknown_context` when the file has no such context
 */
export function useContext(file: ContextsFile, name: string): ContextsFile {
  if (!file.contexts[name]) throw new ContextError('unknown_context', `no context "${name}": batch config get-contexts lists them`, 'NAME');
  return { ...file, currentContext: name };
}

/**
 * The file without context `name`, if it still holds `ctx` (another `batch dev` may have
 * written its own since); a removed selected context gives the selection back to `previous`
 * when that context still exists, else leaves none.
 */
export function forgetContext(file: ContextsFile, name: string, ctx: CliContext, previous?: string): ContextsFile {
  const saved = file.contexts[name];
  if (!saved || saved.api !== ctx.api || saved.token !== ctx.token || saved.operatorToken !== ctx.operatorToken) return file;
  const contexts = Object.fromEntries(Object.entries(file.contexts).filter(([n]) => n !== name));
  if (file.currentContext !== name) return { ...file, contexts };
  return { ...(previous && previous !== name && contexts[previous] ? { currentContext: previous } : {}), contexts };
}

/**
 * `batch config delete-context NAME`: the file without `name`; deleting the selected context leaves none selected.
 * @throws ContextError `unknown_context` when the file has no such context
 */
export function deleteContext(file: ContextsFile, name: string): ContextsFile {
  if (!file.contexts[name]) throw new ContextError('unknown_context', `no context "${name}": batch config get-contexts lists them`, 'NAME');
  const contexts = Object.fromEntries(Object.entries(file.contexts).filter(([n]) => n !== name));
  return { ...(file.currentContext === name ? {} : { currentContext: file.currentContext }), contexts };
}
