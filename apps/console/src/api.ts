/**
 * The console's only way to the API: calls to `/v1` on this origin with the signed-in bearer
 * token, and server-sent events read with `fetch` streaming (EventSource cannot send an
 * Authorization header). The token lives in sessionStorage: it goes when the tab closes.
 */
import type { ConsoleConfig, ErrorBody } from '@batchapi/api';

const TOKEN_KEY = 'batchapi.token';

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An API answer that is not a success: its status and the error body's code and message. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = token.get();
  return { ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra };
}

async function failure(res: Response): Promise<ApiFailure> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as ErrorBody;
    return new ApiFailure(res.status, body.code, body.message);
  } catch {
    return new ApiFailure(res.status, `http_${res.status}`, text || res.statusText);
  }
}

/** Calls the API and parses its JSON answer; a non-2xx answer throws `ApiFailure`. */
export async function call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

let config: Promise<ConsoleConfig> | undefined;

/** The deployment's console settings, read once per page load; `{}` when they cannot be read. */
export function consoleConfig(): Promise<ConsoleConfig> {
  config ??= fetch('config.json')
    .then((r) => (r.ok ? (r.json() as Promise<ConsoleConfig>) : {}))
    .catch(() => ({}));
  return config;
}

/** A query string of the defined, non-empty values, `?` included when any. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** One server-sent event. */
export interface StreamEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Reads the event stream at `path` until it ends or `signal` aborts, calling `onEvent` for each
 * event. Resolves when the server ends the stream (a job reached a terminal phase); a failed
 * open throws `ApiFailure` (a 404 for a job the caller may not see).
 */
export async function readEvents(path: string, onEvent: (e: StreamEvent) => void, signal: AbortSignal, lastEventId?: string): Promise<void> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }), signal });
  if (!res.ok || !res.body) throw await failure(res);
  await readBlocks(res.body, signal, (block) => {
    const e: StreamEvent = { event: 'message', data: '' };
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // a keep-alive comment
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') e.event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') e.id = value;
    }
    if (data.length === 0) return;
    e.data = data.join('\n');
    onEvent(e);
  });
}

/** Splits a text body into blank-line separated blocks (one event each). */
async function readBlocks(body: ReadableStream<Uint8Array>, signal: AbortSignal, onBlock: (block: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const stop = () => void reader.cancel().catch(() => undefined);
  signal.addEventListener('abort', stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        onBlock(buffered.slice(0, end));
        buffered = buffered.slice(end + 2);
      }
    }
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/** Reads a text answer as it arrives (a followed log), calling `onText` with each chunk; a non-2xx answer throws `ApiFailure`. */
export async function readText(path: string, onText: (chunk: string) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { headers: headers(), signal });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    onText(decoder.decode(value, { stream: true }));
  }
}
