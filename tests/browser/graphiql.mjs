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
// --demo: the gateway runs with --demo (a signed-in page with a picker);
// --screenshot FILE: keep a picture of the demo page.
const demo = process.argv.includes('--demo');
const shotAt = process.argv.indexOf('--screenshot');
const screenshot = shotAt > 0 ? process.argv[shotAt + 1] : null;
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
    // demo.json is 404 on a gateway started without --demo, by design.
    if (isLocal(res.url()) && (path === '/' || path.startsWith('/graphiql/')) && path !== '/graphiql/demo.json' && res.status() >= 400) {
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

  if (demo) {
    // Signed in as a demo user: a typed query runs and shows its answer,
    // the docs pane lists Query, and another user sees another tenant.
    const options = await page.$$eval('#demo-user option', (os) => os.map((o) => o.textContent));
    if (options.length < 2) problems.push(`demo picker offers ${options.length} users`);
    const ask = async () => {
      await page.click('.graphiql-query-editor .CodeMirror');
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Delete');
      await page.keyboard.type('{ organization { name type } }');
      await page.click('.graphiql-execute-button');
      await page.waitForFunction(
        () => (document.querySelector('.graphiql-response')?.textContent ?? '').includes('"type"'),
        null,
        { timeout: TIMEOUT_MS },
      );
      return page.$eval('.graphiql-response', (e) => e.textContent);
    };
    const first = await ask();
    if (!/"organization"/.test(first)) problems.push(`no answer shown: ${first}`);
    await page.click('[aria-label="Show Documentation Explorer"]');
    await page.waitForSelector('.graphiql-doc-explorer', { timeout: TIMEOUT_MS });
    const docs = await page.$eval('.graphiql-doc-explorer', (e) => e.textContent);
    if (!docs.includes('Query')) problems.push(`the docs pane does not list Query: ${docs.slice(0, 200)}`);
    if (screenshot) await page.screenshot({ path: screenshot });
    const last = String(options.length - 1);
    await page.selectOption('#demo-user', last);
    await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: TIMEOUT_MS });
    const other = await ask();
    if (other === first) problems.push(`another demo user sees the same answer: ${other}`);
  } else {
    const picker = await page.$('#demo-user');
    if (picker) problems.push('a demo picker without --demo');
    const html = await page.content();
    if (/Bearer ey/.test(html)) problems.push('a token in the page without --demo');
  }
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
