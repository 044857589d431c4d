/**
 * The console's static files (apps/console, built by `npm run build`) under `/console/`, on the
 * API's own origin, so the page calls `/v1` with no CORS. Every answer carries a strict
 * Content-Security-Policy: scripts, styles and requests only from this origin, nothing inline,
 * no frames.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ConsoleConfig } from '@batchapi/api';
import fastifyStatic from '@fastify/static';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';

/** Where the console's build is read from: apps/console/dist next to this app's dist. */
export const DEFAULT_CONSOLE_DIR = join(__dirname, '../../console/dist');

/** The policy of every console answer: nothing but this origin's own files and API. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Revalidated on each load (ETag): a rebuilt console is picked up at once.
  'cache-control': 'no-cache',
};

/**
 * Registers `/console/` on the app: the built files, or a 404 that says how to build them when
 * `dir` has none; and `/console/config.json`, the deployment's `ConsoleConfig`.
 */
export async function serveConsole(app: NestFastifyApplication, dir: string, config: ConsoleConfig = {}): Promise<void> {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.get('/console/config.json', (_req, reply) => {
    void reply
      .headers(SECURITY_HEADERS)
      .type('application/json; charset=utf-8')
      .send(JSON.stringify({ ...(config.traceUrl ? { traceUrl: config.traceUrl } : {}) } satisfies ConsoleConfig));
  });
  // Relative links of the page (app.js, styles.css) resolve under /console/ only with the slash.
  fastify.get('/console', (_req, reply) => {
    void reply.redirect('/console/', 301);
  });
  if (!existsSync(join(dir, 'index.html'))) {
    fastify.get('/console/*', (_req, reply) => {
      void reply
        .status(404)
        .headers(SECURITY_HEADERS)
        .type('text/plain; charset=utf-8')
        .send(`the console is not built (no ${join(dir, 'index.html')}): run npm run build\n`);
    });
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/console/',
    redirect: true,
    cacheControl: false,
    setHeaders: (res) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) void res.header(k, v);
    },
  });
}
