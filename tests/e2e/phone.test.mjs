// The phone app end to end: Debian's Chromium (headless, 360×800) against the
// real gridsync-server on loopback. Screenshots of the main screens go to
// target/e2e-screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, launchPersistentPhone, newPhone, signIn, synced, shot, cli } from './harness.mjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

const NOTES = '走访独居老人陈桂英，身体尚可，反映楼道灯坏了，晚上出入不便。';
const TITLE = '楼道灯损坏，老人夜间出入不便';

async function pending(page) {
  return page.evaluate(() => window.gridsync.phone.pendingChanges());
}

test('offline visit and case survive a reload, reach the server, and reach a second phone', async () => {
  const a = await newPhone(browser);
  await a.page.goto(server.url);
  await a.page.getByTestId('login-username').waitFor();
  await shot(a.page, '01-sign-in');
  await signIn(a.page, server.url, 'li');
  await a.page.evaluate(() => navigator.serviceWorker.ready);
  await synced(a.page);
  await shot(a.page, '02-households');

  // No signal from here on.
  await a.context.setOffline(true);
  await a.page.getByTestId('nav-visits').click();
  await a.page.getByTestId('visit-new').click();
  await a.page.getByTestId('visit-kind-care').click();
  await a.page.getByTestId('visit-notes').fill(NOTES);
  await a.page.getByTestId('visit-concern-input').fill('楼道灯不亮');
  await a.page.getByTestId('visit-concern-add').click();
  await shot(a.page, '03-record-visit');
  await a.page.getByTestId('visit-save').click();
  await a.page.getByTestId('visit-saved').waitFor();
  await a.page.getByTestId('visit-report-case').click();
  await a.page.getByTestId('case-kind-hazard').click();
  await a.page.getByTestId('case-title').fill(TITLE);
  await a.page.getByTestId('case-description').fill('三单元二楼至四楼楼道灯均不亮。');
  await shot(a.page, '04-report-case');
  await a.page.getByTestId('case-save').click();
  await a.page.getByTestId('case-detail-title').waitFor();
  await shot(a.page, '05-case-detail-offline');
  assert.equal(await pending(a.page), 2, 'the visit and the case wait to sync');
  assert.match(await a.page.getByTestId('status-online').innerText(), /离线/);

  // Reload with no network: the app opens from the service worker, the records are there.
  await a.page.reload();
  await a.page.getByTestId('nav-visits').waitFor();
  await a.page.evaluate(() => window.gridsync.ready);
  assert.equal(await pending(a.page), 2, 'nothing lost in the reload');
  await a.page.getByTestId('nav-visits').click();
  await a.page.getByTestId('visit-item').filter({ hasText: '陈桂英' }).first().waitFor();
  await a.page.getByTestId('nav-cases').click();
  await a.page.getByTestId('case-item').filter({ hasText: TITLE }).waitFor();
  await shot(a.page, '06-cases-after-offline-reload');

  // Signal again: the records reach the server.
  const before = await (await fetch(`${server.url}/healthz`)).json();
  await a.context.setOffline(false);
  await synced(a.page);
  const afterSync = await (await fetch(`${server.url}/healthz`)).json();
  assert.ok(afterSync.head_seq >= before.head_seq + 2, 'the server stored the visit and the case');
  assert.match(await a.page.getByTestId('status-online').innerText(), /在线/);
  await shot(a.page, '07-synced');

  // Another phone in the same grid receives them.
  const b = await newPhone(browser);
  await signIn(b.page, server.url, 'zhou');
  await synced(b.page);
  await b.page.getByTestId('nav-cases').click();
  await b.page.getByTestId('case-item').filter({ hasText: TITLE }).click();
  await b.page.getByTestId('case-detail-title').waitFor();
  await shot(b.page, '08-second-phone-case');
  await b.page.getByTestId('nav-visits').click();
  await b.page.getByTestId('visit-item').filter({ hasText: '陈桂英' }).first().waitFor();
  await b.context.close();
  await a.context.close();
});

test('the supervisor moves the case along; a follow-up from the field reaches everyone', async () => {
  const sup = await newPhone(browser);
  await signIn(sup.page, server.url, 'wang');
  await synced(sup.page);
  await sup.page.getByTestId('nav-cases').click();
  await sup.page.getByTestId('case-item').filter({ hasText: TITLE }).click();
  await sup.page.getByTestId('case-move-accepted').click();
  await sup.page.getByTestId('dialog-ok').click();
  await synced(sup.page);
  await shot(sup.page, '09-supervisor-case');

  const field = await newPhone(browser);
  await signIn(field.page, server.url, 'li');
  await synced(field.page);
  await field.page.getByTestId('nav-cases').click();
  await field.page.getByTestId('case-item').filter({ hasText: TITLE }).click();
  assert.match(await field.page.getByTestId('case-status').innerText(), /已受理/);
  await field.page.getByTestId('followup-note').fill('已联系物业，明天更换灯泡');
  await field.page.getByTestId('followup-save').click();
  await field.page.getByTestId('followup-item').filter({ hasText: '明天更换灯泡' }).waitFor();
  await synced(field.page);
  await shot(field.page, '10-follow-up');
  await sup.page.evaluate(() => window.gridsync.syncNow());
  await sup.page.getByTestId('followup-item').filter({ hasText: '明天更换灯泡' }).waitFor({ timeout: 20000 });
  await sup.context.close();
  await field.context.close();
});

test('a record the server refuses shows its reason; the phone then learns the new territory', async () => {
  const c = await newPhone(browser);
  await signIn(c.page, server.url, 'wu');
  await synced(c.page);
  const inGrid = (page, grid) =>
    page.evaluate((g) => window.gridsync.phone.records().filter((r) => r.record.meta.grid === g).length, grid);
  assert.ok((await inGrid(c.page, 'xg/xn/sy/dh/g01')) > 0, 'the phone holds its grid');
  // The administrator moves this grid manager to the neighbouring grid. Work
  // made before the move is still taken into the old grid; but this phone
  // syncs once with nothing to push (which ends that grace) and, having asked
  // where it works only when the app opened, then writes a visit in the old
  // grid: the server refuses it.
  cli(server.data, 'person', 'move', '--username', 'wu', '--territory', 'xg/xn/sy/dh/g02');
  await c.page.evaluate(() => window.gridsync.syncNow());
  await synced(c.page);
  await c.context.setOffline(true);
  await c.page.getByTestId('nav-visits').click();
  await c.page.getByTestId('visit-new').click();
  await c.page.getByTestId('visit-notes').fill('调岗前离线写的走访记录');
  await c.page.getByTestId('visit-save').click();
  await c.page.getByTestId('visit-saved').waitFor();
  await c.context.setOffline(false);
  await c.page.evaluate(() => window.gridsync.syncNow());
  const banner = c.page.getByTestId('rejection-banner');
  await banner.waitFor({ timeout: 20000 });
  assert.match(await banner.innerText(), /不在您负责的网格范围内/);
  assert.match(await banner.innerText(), /调岗前离线写的走访记录/);
  await shot(c.page, '11-rejected-record');
  assert.equal(await pending(c.page), 0, 'a rejected record is not sent again');
  // The refusal made the phone ask where it works now: the old grid's records
  // leave it, the new grid is its own, and a visit there is taken.
  await c.page.waitForFunction(() => window.gridsync.phone.identity().territory === 'xg/xn/sy/dh/g02');
  assert.equal(await inGrid(c.page, 'xg/xn/sy/dh/g01'), 0, 'the old grid left the phone');
  await c.page.getByTestId('nav-me').click();
  assert.equal(await c.page.getByTestId('me-territory').innerText(), 'xg/xn/sy/dh/g02');
  await c.page.getByTestId('nav-visits').click();
  await c.page.getByTestId('visit-new').click();
  await c.page.getByTestId('visit-notes').fill('调岗后在新网格的走访');
  await c.page.getByTestId('visit-save').click();
  await c.page.getByTestId('visit-saved').waitFor();
  await synced(c.page);
  assert.equal(await inGrid(c.page, 'xg/xn/sy/dh/g02'), 1, 'the new visit is in the new grid');
  assert.equal((await c.page.evaluate(() => window.gridsync.phone.rejections())).length, 1, 'and nothing more was refused');
  await c.context.close();
});

test('a phone that opens after its person was moved holds only the new grid', async () => {
  cli(server.data, 'person', 'move', '--username', 'zhou', '--territory', 'xg/xn/sy/dh/g02');
  const c = await newPhone(browser);
  await signIn(c.page, server.url, 'zhou');
  await synced(c.page);
  const grids = await c.page.evaluate(() => [...new Set(window.gridsync.phone.records().map((r) => r.record.meta.grid))]);
  assert.ok(grids.every((g) => g === 'xg/xn/sy/dh/g02'), `only the new grid: ${grids}`);
  cli(server.data, 'person', 'move', '--username', 'zhou', '--territory', 'xg/xn/sy/dh/g01');
  await c.page.reload();
  await c.page.evaluate(() => window.gridsync.ready);
  await synced(c.page);
  await c.page.waitForFunction(() => window.gridsync.phone.identity().territory === 'xg/xn/sy/dh/g01');
  await c.page.waitForFunction(() => window.gridsync.phone.records().length > 0 && window.gridsync.phone.records().every((r) => r.record.meta.grid === 'xg/xn/sy/dh/g01'));
  await c.context.close();
});

test('records, outbox and cursor survive closing and restarting the browser', async () => {
  const profile = mkdtempSync(join(tmpdir(), 'gridsync-profile-'));
  let phone = await launchPersistentPhone(profile);
  await signIn(phone.page, server.url, 'zhou');
  await phone.page.evaluate(() => navigator.serviceWorker.ready);
  await synced(phone.page);
  const known = await phone.page.evaluate(() => window.gridsync.phone.records().length);
  await phone.context.setOffline(true);
  await phone.page.getByTestId('nav-visits').click();
  await phone.page.getByTestId('visit-new').click();
  await phone.page.getByTestId('visit-notes').fill('重启浏览器前写的走访记录');
  await phone.page.getByTestId('visit-save').click();
  await phone.page.getByTestId('visit-saved').waitFor();
  await phone.context.close();

  // The browser process is gone; start it again on the same profile, still offline.
  phone = await launchPersistentPhone(profile);
  await phone.context.setOffline(true);
  await phone.page.goto(server.url);
  await phone.page.getByTestId('nav-visits').waitFor();
  await phone.page.evaluate(() => window.gridsync.ready);
  assert.equal(await pending(phone.page), 1, 'the unsynced visit is still waiting');
  assert.equal(await phone.page.evaluate(() => window.gridsync.phone.records().length), known + 1);
  await phone.page.getByTestId('nav-visits').click();
  await phone.page.getByTestId('visit-item').filter({ hasText: '重启浏览器前' }).waitFor();
  await phone.context.setOffline(false);
  await synced(phone.page);
  await phone.context.close();
});

test('an administrator sees the report and downloads a snapshot from the app', async () => {
  const { context, page } = await newPhone(browser);
  await signIn(page, server.url, 'admin');
  await synced(page);
  await page.getByTestId('nav-me').click();
  await page.getByTestId('me-reports').click();
  await page.getByTestId('report-table').waitFor({ timeout: 20000 });
  const grid = page.locator('[data-testid=report-row][data-territory="xg/xn/sy/dh/g01"]');
  await grid.waitFor();
  await page.getByTestId('report-chart').waitFor();
  await shot(page, '12-admin-report');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 20000 }),
    page.getByTestId('snapshot-csv').click(),
  ]);
  const path = await download.path();
  const { readFileSync } = await import('node:fs');
  const bytes = readFileSync(path);
  assert.equal(bytes.subarray(0, 2).toString(), 'PK', 'a zip archive');
  // Photo evidence has its columns; 包含照片 asks for the photos in the archive.
  const headers = await page.getByTestId('report-table').locator('thead th').allInnerTexts();
  assert.ok(headers.includes('有照片的走访') && headers.includes('有照片的事件'), headers.join(','));
  await page.getByTestId('snapshot-photos').check();
  const [withPhotos] = await Promise.all([
    page.waitForEvent('download', { timeout: 20000 }),
    page.getByTestId('snapshot-csv').click(),
  ]);
  assert.equal(readFileSync(await withPhotos.path()).subarray(0, 2).toString(), 'PK');
  const audit = cli(server.data, 'audit');
  assert.match(audit, /snapshot\.export/);
  assert.match(audit, /photos=true/, 'the download with 包含照片 asked for photos');
  await context.close();
});
