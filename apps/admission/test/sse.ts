/** Server-sent events as the admission suites read them: a stream's events of one name, parsed, in order, as they arrive. */

/** The parsed `data` of each `event` event of the stream at `url`; expects a 200 `text/event-stream` answer. */
export async function* sseEvents<T>(url: string, event: string, headers: Record<string, string>, signal: AbortSignal): AsyncGenerator<T> {
  const res = await fetch(url, { headers, signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const decoder = new TextDecoder();
  const named = new RegExp(`^event: ${event}$`, 'm');
  let text = '';
  for await (const chunk of res.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      if (!named.test(block)) continue;
      yield JSON.parse(/^data: (.*)$/m.exec(block)![1]) as T;
    }
  }
}
