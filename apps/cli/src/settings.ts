/** Where the CLI finds the API: flags, then `BATCH_API`/`BATCH_TOKEN`, then the file `batch dev` writes. */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface CliSettings {
  api: string;
  token: string;
}

/** `$XDG_CONFIG_HOME/batchapi/config.json` (default `~/.config/batchapi/config.json`). */
export function settingsFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'batchapi', 'config.json');
}

/** `${XDG_CACHE_HOME:-~/.cache}/batchapi`: the local cluster's data. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'batchapi');
}

export function resolveSettings(flags: { api?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): CliSettings | undefined {
  let saved: Partial<CliSettings> = {};
  const file = settingsFile(env);
  if (existsSync(file)) {
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<CliSettings>;
    } catch {
      /* ignore a broken file */
    }
  }
  // An empty variable counts as unset.
  const api = flags.api || env.BATCH_API || saved.api;
  const token = flags.token || env.BATCH_TOKEN || saved.token;
  return api && token ? { api, token } : undefined;
}

export function saveSettings(s: CliSettings, env: NodeJS.ProcessEnv = process.env): string {
  const file = settingsFile(env);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(s, null, 2), { mode: 0o600 });
  return file;
}

/** Removes the settings file if it still holds `s` (another `batch dev` may have written its own since). */
export function forgetSettings(s: CliSettings, env: NodeJS.ProcessEnv = process.env): void {
  const file = settingsFile(env);
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<CliSettings>;
    if (saved.api === s.api && saved.token === s.token) rmSync(file, { force: true });
  } catch {
    /* gone or unreadable: nothing of ours to remove */
  }
}
