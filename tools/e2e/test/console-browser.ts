/**
 * The console suites' browser: Debian's chromium driven by `playwright-core`, the console's bundle
 * built from its sources as they are now (admission serves `apps/console/dist`), and a sign-in
 * through the page's own form. Screenshots go to `dist/console-screens/` (not committed).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';

const ROOT = join(__dirname, '../../..');
const CHROMIUM = '/usr/bin/chromium';
/** Where the suites save each page's screenshot. */
export const SCREENS = join(ROOT, 'dist/console-screens');

/** Builds the console's bundle and launches the browser; throws naming the package when there is no browser. */
export async function launchConsoleBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium with \`apt-get install -y chromium\` (.ci/run does)`);
  execFileSync(process.execPath, [join(ROOT, 'apps/console/build.mjs')], { stdio: 'inherit' });
  mkdirSync(SCREENS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** A new tab of `browser` signed in to the console at `base` with `token` through the sign-in form, on the jobs page; `screenshot` saves the form first. */
export async function signIn(browser: Browser, base: string, token: string, screenshot?: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (err) => console.error(`console page error: ${err.message}`));
  await page.goto(`${base}/console/`);
  await page.getByLabel('API token').fill(token);
  if (screenshot) await page.screenshot({ path: join(SCREENS, screenshot) });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Jobs' }).waitFor();
  return page;
}
