// How the app starts (issue 11, point 9): the WebAssembly is asked for before
// the screens' modules, a screen's module is loaded only when it is opened
// (every one still works offline from the service worker's cache), and a
// first visit downloads the app once — the service worker's install fills
// its cache from the HTTP cache the page just filled, not over the network again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPhone, signIn } from './harness.mjs';
import { throttler, traffic } from './bench-lib.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** The files the service worker keeps, as listed in sw.js. */
async function shellFiles() {
  const text = await (await fetch(`${server.url}/sw.js`)).text();
  return [...text.match(/const SHELL = \[([^\]]*)\]/)[1].matchAll(/'([^']*)'/g)].map((m) => m[1]);
}

/** What downloading every shell file once costs, compressed as the server sends it to Chromium. */
async function shellOnceBytes(files) {
  let n = 0;
  for (const f of files) {
    const r = await fetch(`${server.url}/${f}`, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    n += Number(r.headers.get('content-length')) || (await r.arrayBuffer()).byteLength;
  }
  return n;
}

/** Waits until the service worker is active and its cache holds the whole shell. */
async function installed(page, count) {
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => {}));
  await page.waitForFunction(async (n) => {
    const keys = await caches.keys();
    const shell = keys.find((k) => k.startsWith('gridsync-shell-'));
    return !!shell && (await (await caches.open(shell)).keys()).length >= n && !!navigator.serviceWorker.controller;
  }, count, { polling: 100, timeout: 30_000 });
}

test('a first visit downloads the app once: the service worker fills its cache from the HTTP cache, the WebAssembly only by the page', { timeout: 60_000 }, async () => {
  const files = await shellFiles();
  const once = await shellOnceBytes(files);
  const { context, page } = await newPhone(browser);
  const t = await throttler(context, page); // the page's requests, over CDP
  const worker = []; // the service worker's own requests (Playwright reads them over CDP too)
  context.on('requestfinished', async (r) => {
    if (!r.serviceWorker()) return;
    const sz = await r.sizes().catch(() => null);
    worker.push({ url: r.url(), bytes: sz ? sz.responseBodySize + sz.responseHeadersSize : 0, body: sz ? sz.responseBodySize : 0 });
  });
  await page.goto(server.url);
  await page.getByTestId('login-username').waitFor();
  await installed(page, files.length);
  await new Promise((r) => setTimeout(r, 300));

  const pageNet = traffic(t.requests().filter((r) => r.end));
  const workerBytes = worker.reduce((n, x) => n + x.bytes, 0);
  const wasmAgain = worker.filter((x) => x.url.endsWith('.wasm'));
  const figures = `page ${pageNet.down_bytes} B in ${pageNet.requests} requests, service worker ${workerBytes} B in ${worker.length} requests (wasm ${JSON.stringify(wasmAgain)}), the shell once ${once} B`;
  console.log(figures);
  assert.ok(worker.length > 0, `the service worker's requests were seen: ${figures}`);
  assert.ok(wasmAgain.every((x) => x.body < 1000), `the service worker took the WebAssembly from the HTTP cache: ${figures}`);
  // Headers of ~35 requests (page + worker revalidations) on top of the bodies once.
  assert.ok(pageNet.down_bytes + workerBytes <= once + 35 * 600, `first visit (page + service worker) within the shell once + headers: ${figures}`);
});

test('the WebAssembly is asked for first; a screen loads its module when opened, and every screen opens offline after the first visit', { timeout: 90_000 }, async () => {
  const files = await shellFiles();
  const { context, page } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  await installed(page, files.length);

  // Reopened offline on 住户, from the service worker's cache.
  await context.setOffline(true);
  await page.evaluate(() => (location.hash = '#/households'));
  await page.reload();
  await page.evaluate(() => window.gridsync.ready);
  await page.locator('#view h1', { hasText: '住户' }).waitFor();
  const asked = await page.evaluate(() => {
    const at = {};
    for (const r of performance.getEntriesByType('resource')) at[new URL(r.name).pathname.replace(/^\//, '')] = Math.round(r.startTime);
    at.wasm_requests = performance.getEntriesByType('resource').filter((r) => r.name.endsWith('.wasm')).length;
    return { at, fromWorker: performance.getEntriesByType('navigation')[0].workerStart > 0 };
  });
  const at = asked.at;
  assert.ok(asked.fromWorker, 'the reload came from the service worker');
  assert.equal(at.wasm_requests, 1, `the WebAssembly is fetched once (the preload is used): ${JSON.stringify(at)}`);
  assert.ok(at['pkg/gridsync_client_bg.wasm'] <= at['app.js'], `the WebAssembly is asked for before the scripts: ${JSON.stringify(at)}`);
  assert.ok(at['pkg/gridsync_client_bg.wasm'] < at['households.js'], `the WebAssembly is asked for before the screen's module: ${JSON.stringify(at)}`);
  for (const unused of ['visits.js', 'cases.js']) assert.equal(at[unused], undefined, `${unused} is not loaded to open 住户: ${JSON.stringify(at)}`);

  // Every other screen, offline, its module never loaded before in this page.
  for (const [hash, title] of [['#/visits', '走访'], ['#/cases', '事件'], ['#/today', '今日'], ['#/promises', null], ['#/diary', '民情日记'], ['#/visit/new', null], ['#/case/new', null], ['#/me', '我的']]) {
    await page.evaluate((h) => (location.hash = h), hash);
    await page.waitForFunction((h) => location.hash === h && !document.querySelector('#view .loading'), hash);
    if (title) await page.locator('#view h1', { hasText: title }).first().waitFor({ timeout: 10_000 });
    else await page.locator('#view section, #view form').first().waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('screen-load-failed').count(), 0, `${hash} opens offline`);
    assert.equal(await page.locator('#view p.error').count(), 0, `${hash} draws without an error`);
  }
  await context.setOffline(false);
});
