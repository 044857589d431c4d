/**
 * The CLI's settings file: its contexts (contexts.ts decides what they mean) and the local
 * cluster's data directory. Which API a command uses: flags, then `BATCH_*` variables, then the
 * selected context.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type CliContext,
  type CliSettings,
  type ContextsFile,
  forgetContext,
  parseContextsFile,
  type Role,
  resolveContext,
  type SettingsFlags,
} from './contexts';

export type { CliSettings } from './contexts';

/** `$XDG_CONFIG_HOME/batchapi/config.json` (default `~/.config/batchapi/config.json`). */
export function settingsFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'batchapi', 'config.json');
}

/** `${XDG_CACHE_HOME:-~/.cache}/batchapi`: the local cluster's data. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'batchapi');
}

/** The settings file's contexts; none when it is missing or unreadable. */
export function readContexts(env: NodeJS.ProcessEnv = process.env): ContextsFile {
  try {
    return parseContextsFile(JSON.parse(readFileSync(settingsFile(env), 'utf8')));
  } catch {
    return { contexts: {} }; // missing or broken: no contexts
  }
}

/** Writes the contexts (owner-only: it holds tokens) in one rename, so a reader never sees half a file; none left removes the file. */
export function writeContexts(file: ContextsFile, env: NodeJS.ProcessEnv = process.env): string {
  const path = settingsFile(env);
  if (!Object.keys(file.contexts).length) {
    rmSync(path, { force: true });
    return path;
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return path;
}

/**
 * The API and token of a command acting as `role`, or undefined when nothing names an API.
 * @throws ContextError when a context is selected that the file does not have
 */
export function resolveSettings(flags: SettingsFlags, env: NodeJS.ProcessEnv = process.env, role: Role = 'tenant'): CliSettings | undefined {
  return resolveContext(readContexts(env), flags, env, role);
}

/** Saves context `name` and selects it; returns the file's path and the context selected before. */
export function saveContext(name: string, ctx: CliContext, env: NodeJS.ProcessEnv = process.env): { path: string; previous?: string } {
  const file = readContexts(env);
  const path = writeContexts({ currentContext: name, contexts: { ...file.contexts, [name]: ctx } }, env);
  return { path, previous: file.currentContext };
}

/** Removes context `name` if it still holds `ctx`, handing the selection back to `previous` (contexts.ts `forgetContext`). */
export function forgetSavedContext(name: string, ctx: CliContext, previous?: string, env: NodeJS.ProcessEnv = process.env): void {
  const file = readContexts(env);
  const next = forgetContext(file, name, ctx, previous);
  if (next !== file) writeContexts(next, env);
}
