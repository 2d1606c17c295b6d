// The browser side of the token lifecycle, in a real headless Chromium (Debian's
// package) driven by playwright-core, against the real `aspjwt serve` on loopback.
// Short expiries (access 20 s, refresh threshold 5 s) make several refresh cycles fit in
// a test. Refresh requests are counted on the server, from its audit log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('../node/node_modules/playwright-core');

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.ASPJWT_BIN || join(root, 'target', 'debug', 'aspjwt');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'correct horse battery staple';
const USERS = ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com', 'e@example.com'];

let dir, server, base, browser;

function cli(args, input) {
  return execFileSync(BIN, [...args, '--db', join(dir, 'aspjwt.db'), '--env-file', join(dir, '.env')], { input, encoding: 'utf8' });
}

/** Server-side count of refresh requests for one user, by outcome. */
function refreshes(email) {
  const { events } = JSON.parse(cli(['--json', 'audit', '--user', email, '--limit', '0']));
  const count = pred => events.filter(pred).length;
  return {
    rotated: count(e => e.event === 'refresh' && e.reason === 'rotated'),
    grace: count(e => e.event === 'refresh' && e.reason === 'grace'),
    failed: count(e => e.event === 'refresh_failure' || e.event === 'refresh_token_reuse'),
  };
}

async function waitFor(what, fn, timeoutMs) {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aspjwt-browser-'));
  execFileSync(BIN, ['rotate', '--env-file', join(dir, '.env'), '--create', '-q']);
  appendFileSync(join(dir, '.env'), 'JWT_ACCESS_TOKEN_EXPIRY=20s\nJWT_REFRESH_THRESHOLD=5s\n');
  for (const email of USERS) {
    cli(['user', 'add', '--email', email, '--name', 'Browser Test', '--role', 'sales_agent', '--password-stdin'], PASSWORD + '\n');
  }
  server = spawn(BIN, ['serve', '--bind', '127.0.0.1:0', '--env-file', join(dir, '.env'), '--db', join(dir, 'aspjwt.db')], { stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('the service did not start')), 30000);
    server.stdout.on('data', chunk => {
      buf += chunk;
      const m = buf.match(/"event":"listening","addr":"([^"]+)"/);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-background-timer-throttling', '--disable-renderer-backgrounding'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

async function signIn(page, email) {
  await page.goto(base + '/');
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await page.click('#login-button');
  await page.waitForSelector('#session:not([hidden])', { timeout: 10000 });
}

const expiresAt = page => page.getAttribute('#countdown', 'data-expires-at').then(Number);

test('the page refreshes by itself for three cycles and the countdown stays positive', { timeout: 120000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const errors = [];
  // Script errors only: a 401 from token-info before sign-in is the expected answer.
  page.on('console', m => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()));
  page.on('pageerror', e => errors.push(String(e)));
  await signIn(page, USERS[0]);
  assert.equal(await page.textContent('#user-email'), USERS[0]);
  assert.equal(await page.textContent('#user-role'), 'sales agent');
  const seen = [];
  await waitFor('three refreshes', async () => {
    const left = Number(await page.getAttribute('#countdown', 'data-seconds'));
    seen.push(left);
    assert.ok(left > 0 || seen.length < 3, `the countdown reached ${left}`);
    return refreshes(USERS[0]).rotated >= 3;
  }, 90000);
  assert.equal(await page.getAttribute('body', 'data-status'), 'authenticated');
  assert.ok((await page.locator('#events li[data-type="refreshed"]').count()) >= 3);
  assert.ok(Math.min(...seen.slice(2)) > 0, 'the countdown stayed positive');
  mkdirSync(join(root, 'target', 'browser'), { recursive: true });
  await page.screenshot({ path: join(root, 'target', 'browser', 'session-page.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('two tabs: one refresh per cycle, both show the same expiry', { timeout: 120000 }, async () => {
  const context = await browser.newContext();
  const a = await context.newPage();
  await signIn(a, USERS[1]);
  const b = await context.newPage();
  await b.goto(base + '/');
  await b.waitForSelector('#session:not([hidden])', { timeout: 10000 });
  const start = refreshes(USERS[1]);
  const firstExpiry = await expiresAt(a);
  // Two cycles.
  await waitFor('two cycles', async () => refreshes(USERS[1]).rotated >= start.rotated + 2, 60000);
  await waitFor('both tabs in step', async () => (await expiresAt(a)) === (await expiresAt(b)) && (await expiresAt(a)) > firstExpiry, 10000);
  const end = refreshes(USERS[1]);
  assert.equal(end.rotated - start.rotated, 2, 'exactly one rotation per cycle');
  assert.equal(end.grace, start.grace, 'no second tab refreshed the same token');
  assert.equal(end.failed, start.failed);
  await context.close();
});

test('logging out in one tab shows the login form in the other within 2 s', { timeout: 60000 }, async () => {
  const context = await browser.newContext();
  const a = await context.newPage();
  await signIn(a, USERS[2]);
  const b = await context.newPage();
  await b.goto(base + '/');
  await b.waitForSelector('#session:not([hidden])');
  const t = Date.now();
  await a.click('#logout-button');
  await b.waitForSelector('#login:not([hidden])', { timeout: 2000 });
  assert.ok(Date.now() - t <= 2000);
  assert.equal(await b.getAttribute('body', 'data-status'), 'anonymous');
  await context.close();
});

test('revoking the session shows the login form in both tabs at their next refresh', { timeout: 60000 }, async () => {
  const context = await browser.newContext();
  const a = await context.newPage();
  await signIn(a, USERS[3]);
  const b = await context.newPage();
  await b.goto(base + '/');
  await b.waitForSelector('#session:not([hidden])');
  cli(['sessions', 'revoke', '--user', USERS[3]]);
  for (const page of [a, b]) {
    await page.waitForSelector('#login:not([hidden])', { timeout: 25000 });
    assert.match(await page.textContent('#login-message'), /session has ended/);
  }
  await context.close();
});

test('a refresh that fails with a network error is retried and succeeds before expiry', { timeout: 60000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, USERS[4]);
  const before = refreshes(USERS[4]).rotated;
  let blocked = 0;
  await context.route('**/api/auth/refresh', route => {
    blocked += 1;
    return route.abort('internetdisconnected');
  });
  await page.waitForSelector('#events li[data-type="retry"]', { timeout: 25000 });
  await new Promise(r => setTimeout(r, 1500));
  await context.unroute('**/api/auth/refresh');
  await waitFor('the retried refresh', async () => refreshes(USERS[4]).rotated > before, 20000);
  await page.waitForSelector('#events li[data-type="refreshed"]', { timeout: 5000 });
  assert.ok(blocked >= 1);
  assert.equal(await page.getAttribute('body', 'data-status'), 'authenticated');
  assert.ok(Number(await page.getAttribute('#countdown', 'data-seconds')) > 0);
  await context.close();
});

test('the page and its module get the relaxed policy, the API keeps the strict one', async () => {
  const page = await fetch(base + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  const html = await page.text();
  assert.ok(!/<script>/.test(html), 'no inline script');
  const mod = await fetch(base + '/assets/token-manager.js');
  assert.match(mod.headers.get('content-type'), /javascript/);
  const api = await fetch(base + '/api/health');
  assert.equal(api.headers.get('content-security-policy').startsWith("default-src 'none'; base-uri"), true);
});
