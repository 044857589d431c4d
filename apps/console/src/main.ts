/**
 * The console's entry: sign-in, the hash router (`#/` jobs, `#/jobs/{id}` a job, `#/workflows`
 * and `#/workflows/{id}`, `#/queues`, `#/nodes`, `#/usage`) and the frame around the pages. Hash routes let
 * admission serve the same index.html for every page.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { token } from './api';
import { html } from './html';
import { JobPage } from './job-page';
import { JobsPage } from './jobs-page';
import { NodesPage } from './nodes-page';
import { QueuesPage } from './queues-page';
import { signInLink } from './sign-in-link';
import { UsagePage } from './usage-page';
import { WorkflowPage, WorkflowsPage } from './workflow-page';

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [value, setValue] = useState('');
  const submit = (e: Event) => {
    e.preventDefault();
    if (!value.trim()) return;
    token.set(value.trim());
    onSignedIn();
  };
  return html`<main>
    <h1>Sign in to BatchAPI</h1>
    <form class="signin" onSubmit=${submit}>
      <p>Paste your API token (the bearer token the CLI and SDK use). It is kept for this tab only.</p>
      <label for="token"
        >API token
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          value=${value}
          onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)}
      /></label>
      <div><button type="submit">Sign in</button></div>
    </form>
  </main>`;
}

function App() {
  const hash = useHash();
  const [signedIn, setSignedIn] = useState(token.get() !== null);
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  const job = /^#\/jobs\/([^/?]+)/.exec(hash);
  const workflow = /^#\/workflows\/([^/?]+)/.exec(hash);
  const page = job
    ? html`<${JobPage} id=${decodeURIComponent(job[1])} key=${job[1]} />`
    : workflow
      ? html`<${WorkflowPage} id=${decodeURIComponent(workflow[1])} key=${workflow[1]} />`
      : /^#\/workflows\/?$/.test(hash)
        ? html`<${WorkflowsPage} />`
        : /^#\/queues\/?$/.test(hash)
          ? html`<${QueuesPage} />`
          : /^#\/nodes\/?$/.test(hash)
            ? html`<${NodesPage} />`
            : /^#\/usage\/?$/.test(hash)
              ? html`<${UsagePage} />`
              : html`<${JobsPage} />`;
  // The section shown: a job's page is under Jobs, a workflow's under Workflows.
  const current = (href: string) => ((href === '#/' ? !/^#\/(workflows|queues|nodes|usage)/.test(hash) : hash.startsWith(href)) ? 'page' : undefined);
  const signOut = () => {
    token.clear();
    setSignedIn(false);
  };
  return html`<div>
    <header class="top">
      <span class="brand">BatchAPI</span>
      <nav aria-label="Pages">
        <a href="#/" aria-current=${current('#/')}>Jobs</a>
        <a href="#/workflows" aria-current=${current('#/workflows')}>Workflows</a>
        <a href="#/queues" aria-current=${current('#/queues')}>Queues</a>
        <a href="#/nodes" aria-current=${current('#/nodes')}>Nodes</a>
        <a href="#/usage" aria-current=${current('#/usage')}>Usage</a>
      </nav>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    ${page}
  </div>`;
}

// A sign-in link (`batch dev`, `npm run demo`): keep the token for the tab, and take it out of the address.
const link = signInLink(location.hash);
if (link) {
  token.set(link.token);
  history.replaceState(null, '', link.page);
}

// The placeholder text goes: render adds to what the element holds, it does not replace it.
const root = document.getElementById('app')!;
root.replaceChildren();
render(html`<${App} />`, root);
