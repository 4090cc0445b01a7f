// Starts the real gridsync-server binary on loopback with a fresh data
// directory, and opens phone-sized Chromium contexts against it.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');
export const shots = join(root, 'target', 'e2e-screenshots');
const binary = process.env.GRIDSYNC_SERVER_BIN || join(root, 'target', 'debug', 'gridsync-server');

export const PASSWORD = 'e2e-password-1';

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

/** Runs an admin command against the data directory (or the running server's socket). */
export function cli(data, ...args) {
  return execFileSync(binary, ['--data', data, ...args], { encoding: 'utf8' });
}

/** A server with a small city: two grids in one community, people with known passwords. */
export async function startServer() {
  const data = join(mkdtempSync(join(tmpdir(), 'gridsync-e2e-')), 'data');
  const territories = [
    ['xg', '孝感市'], ['xg/xn', '孝南区'], ['xg/xn/sy', '书院街道'], ['xg/xn/sy/dh', '东湖社区'],
    ['xg/xn/sy/dh/g01', '东湖社区第一网格'], ['xg/xn/sy/dh/g02', '东湖社区第二网格'],
  ];
  for (const [path, name] of territories) cli(data, 'territory', 'add', path, name);
  const people = [
    ['li', '李红', 'field_staff', 'xg/xn/sy/dh/g01'],
    ['zhou', '周强', 'field_staff', 'xg/xn/sy/dh/g01'],
    ['wu', '吴敏', 'field_staff', 'xg/xn/sy/dh/g01'],
    ['wang', '王主任', 'supervisor', 'xg/xn/sy/dh'],
    ['admin', '管理员', 'administrator', 'xg'],
  ];
  for (const [u, n, r, t] of people) {
    cli(data, 'person', 'add', '--username', u, '--name', n, '--role', r, '--territory', t, '--password', PASSWORD);
  }
  const port = await freePort();
  const child = spawn(binary, ['--data', data, 'serve', '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, GRIDSYNC_APP_DIR: process.env.GRIDSYNC_E2E_APP_DIR || join(root, 'web'), GRIDSYNC_LOG: 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, data, stop: () => child.kill('SIGTERM'), kill: () => child.kill('SIGKILL') };
}

export async function launchBrowser() {
  mkdirSync(shots, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const PHONE = {
  viewport: { width: 360, height: 800 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
};

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A whole browser with its profile on disk in `dir`: closing and relaunching it is a browser restart. */
export async function launchPersistentPhone(dir) {
  const context = await chromium.launchPersistentContext(dir, {
    ...PHONE, executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: FLAGS,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return { context, page };
}

/** A phone: a 360×800 context with its own storage, like a separate device. `options` adds to the context's (e.g. `serviceWorkers: 'block'`). */
export async function newPhone(browser, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 360, height: 800 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    locale: 'zh-CN', timezoneId: 'Asia/Shanghai', ...options,
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return { context, page };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

/** Opens the app and signs in. */
export async function signIn(page, url, username) {
  await page.goto(url);
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('nav-me').waitFor(); // the record tabs too, unless an administrator over a sub-district or more
  await page.evaluate(() => window.gridsync.ready);
  // Every screen fetched, as on a phone that opened the app before the signal
  // went: a test going offline at once would otherwise find 走访 not yet loaded.
  await page.evaluate(() => window.gridsync.screens);
}

/** Waits until the phone reports nothing left to sync. */
export async function synced(page) {
  await page.evaluate(() => window.gridsync.syncNow());
  await page.waitForFunction(() => window.gridsync.phone.pendingChanges() === 0, null, { timeout: 20000 });
}
