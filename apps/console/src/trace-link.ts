/** The trace UI's address of a trace: pure, no DOM, so its table test runs in node. */

/** The trace UI's address of `traceId` from the template, or undefined when the template is not an http(s) URL. */
export function traceLink(template: string, traceId: string): string | undefined {
  const url = template.replaceAll('{traceId}', encodeURIComponent(traceId));
  return /^https?:\/\//i.test(url) ? url : undefined;
}
