/** Server-sent events as the admission suites read them. */

/** One event of a stream: its name (none for a comment) and its parsed `data` (undefined for a comment). */
export interface SseBlock {
  event?: string;
  data?: unknown;
}

/** The blocks of a `text/event-stream` body, parsed, in order, as they arrive; keep-alive comments included. */
export async function* sseBlocks(body: ReadableStream<Uint8Array>): AsyncGenerator<SseBlock> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of body) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const data = /^data: (.*)$/m.exec(block)?.[1];
      yield { event: /^event: (.*)$/m.exec(block)?.[1], data: data === undefined ? undefined : JSON.parse(data) };
    }
  }
}

/** The parsed `data` of each `event` event of the stream at `url`; expects a 200 `text/event-stream` answer. */
export async function* sseEvents<T>(url: string, event: string, headers: Record<string, string>, signal: AbortSignal): AsyncGenerator<T> {
  const res = await fetch(url, { headers, signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  for await (const b of sseBlocks(res.body!)) if (b.event === event) yield b.data as T;
}

/** The next item of a stream's events, or 'none' when none came within `ms` (a lost event fails at once, not at the test's timeout). */
export async function nextWithin<T>(events: AsyncGenerator<T>, ms: number): Promise<T | 'none'> {
  let timer: NodeJS.Timeout | undefined;
  const none = new Promise<'none'>((r) => {
    timer = setTimeout(() => r('none'), ms);
  });
  const got = await Promise.race([events.next().then((r) => r.value as T), none]);
  clearTimeout(timer);
  return got;
}
