/**
 * The sign-in link `batch dev` and `npm run demo` print: `/console/#token=<token>&to=<page>`. The
 * token is in the fragment, which the browser never sends to the server; the console keeps it
 * for the tab and replaces the address with the page's own (`#/workflows/…`), so it leaves the
 * address bar and the tab's history. Pure.
 */

/** The token and the console page (a hash route) of a sign-in link, or undefined when `hash` is not one. */
export function signInLink(hash: string): { token: string; page: string } | undefined {
  if (!hash.startsWith('#token=')) return undefined;
  const params = new URLSearchParams(hash.slice(1));
  const token = params.get('token')?.trim();
  if (!token) return undefined;
  const to = params.get('to') ?? '/';
  // Only a page of the console: a path of its router, nothing else.
  return { token, page: /^\/[\w./-]*$/.test(to) && !to.startsWith('//') ? `#${to}` : '#/' };
}
