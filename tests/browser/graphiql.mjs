// Opens the gateway's GraphiQL page in headless Chromium and checks that it
// renders the editor from the gateway alone.
//
//   npm ci --prefix tests/browser
//   node tests/browser/graphiql.mjs http://127.0.0.1:PORT
//
// Fails (exit 1) if the page asks any other host for anything, if a script
// throws or the page logs an error such as "ReactDOM is not defined", if
// its Content-Security-Policy refuses anything, or if one of its own assets
// is missing.
// Prints "graphiql ok" on success. CHROMIUM overrides the browser binary.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const TIMEOUT_MS = 30_000;

const base = process.argv[2];
if (!base) {
  console.error('usage: node graphiql.mjs <gateway base URL>');
  process.exit(2);
}
const origin = new URL(base);
const problems = [];

// data:, blob: and about: URLs never leave the page.
const isLocal = (url) => {
  const u = new URL(url);
  return ['data:', 'blob:', 'about:'].includes(u.protocol) || u.host === origin.host;
};

const profile = await mkdtemp(join(tmpdir(), 'strata-graphiql-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });

  // Anything bound elsewhere is recorded and never sent.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLocal(url)) return route.continue();
    problems.push(`request to another host: ${url}`);
    return route.abort('blockedbyclient');
  });

  // The browser logs Content-Security-Policy refusals where the console
  // event does not see them, and a refused URL is never requested.
  await context.exposeBinding('__strataCspViolation', (_source, text) => {
    problems.push(`Content-Security-Policy refused ${text}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__strataCspViolation(`${e.effectiveDirective}: ${e.blockedURI || '(inline)'}`);
    });
  });

  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => problems.push(`uncaught error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' && /is not defined|Uncaught/.test(text)) {
      problems.push(`console: ${text}`);
    }
  });
  page.on('websocket', (ws) => {
    if (!isLocal(ws.url())) problems.push(`WebSocket to another host: ${ws.url()}`);
  });
  page.on('response', (res) => {
    const path = new URL(res.url()).pathname;
    if (isLocal(res.url()) && (path === '/' || path.startsWith('/graphiql/')) && res.status() >= 400) {
      problems.push(`${res.status()} for ${res.url()}`);
    }
  });

  await page.goto(new URL('/', origin).href, { timeout: TIMEOUT_MS });
  try {
    await page.waitForSelector('.graphiql-container', { timeout: TIMEOUT_MS });
  } catch {
    problems.push('.graphiql-container never appeared');
  }
  // Let the first schema fetch settle so late errors are seen too.
  await page.waitForLoadState('networkidle', { timeout: 5_000 }).catch(() => {});
} catch (err) {
  problems.push(`browser: ${err.message}`);
} finally {
  await context?.close().catch(() => {});
  await rm(profile, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log('graphiql ok');
