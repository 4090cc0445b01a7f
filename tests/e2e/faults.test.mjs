// The phone app under faults, in Debian's Chromium (headless, 360×800, zh-CN)
// against the real gridsync-server: the page closed or crashed in the middle
// of a save and of a sync, the storage quota used up, the phone's clock hours
// wrong, the device revoked while work waits. Each time: nothing the app
// called saved is lost, nothing reaches the server twice, and where the grid
// manager must act a Chinese message says what to do. Screenshots of those
// messages go to target/e2e-screenshots/faults-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PASSWORD, cli, launchBrowser, launchPersistentPhone, newPhone, shot, signIn, startServer, synced } from './harness.mjs';

let server;
let browser;
const browsers = new Set(); // persistent browsers still open (closed at the end if a test failed)
let observer; // the community's supervisor on a phone of their own: what the server holds, as a second phone sees it

const GRID = 'xg/xn/sy/dh/g01';

before(async () => {
  server = await startServer();
  // People of our own, so that no test's sign-ins replace another test's devices.
  for (const [u, n] of [['zhao', '赵敏'], ['sun', '孙丽'], ['qian', '钱进'], ['feng', '冯涛'], ['chen', '陈静']]) {
    cli(server.data, 'person', 'add', '--username', u, '--name', n, '--role', 'field_staff', '--territory', GRID, '--password', PASSWORD);
  }
  browser = await launchBrowser();
  observer = await newPhone(browser);
  await signIn(observer.page, server.url, 'wang');
});

after(async () => {
  for (const c of browsers) await c.close().catch(() => {});
  await browser?.close();
  server?.stop();
});

const pending = (page) => page.evaluate(() => window.gridsync.phone.pendingChanges());
const records = (page, kind) => page.evaluate((k) => window.gridsync.phone.records(k), kind);

/** What the server holds, as the supervisor's phone receives it. */
async function onServer() {
  await synced(observer.page);
  const all = await records(observer.page);
  return {
    visits: (marker) => all.filter((l) => l.record.type === 'visit_log' && l.record.fields.notes.includes(marker)),
    cases: (marker) => all.filter((l) => l.record.type === 'case' && l.record.fields.title.includes(marker)),
  };
}

/** Opens the visit form and writes the notes, without saving. */
async function writeVisit(page, notes) {
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-notes').fill(notes);
}

async function recordVisit(page, notes) {
  await writeVisit(page, notes);
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
}

async function reportCase(page, title) {
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('case-new').click();
  await page.getByTestId('case-kind-hazard').click();
  await page.getByTestId('case-title').fill(title);
  await page.getByTestId('case-description').fill('三单元楼道灯不亮，老人夜间出入不便。');
  await page.getByTestId('case-save').click();
  await page.getByTestId('case-detail-title').waitFor();
  return page.evaluate(() => location.hash.split('/')[2].split('?')[0]);
}

async function followUp(page, caseId, note) {
  await page.evaluate((id) => (location.hash = `#/case/${id}`), caseId);
  await page.getByTestId('followup-note').fill(note);
  await page.getByTestId('followup-save').click();
}

/** A browser on its own profile on disk (closing it and starting it again is a restart). */
async function persistentPhone(profile) {
  const phone = await launchPersistentPhone(profile);
  browsers.add(phone.context);
  phone.context.on('close', () => browsers.delete(phone.context));
  return phone;
}

/** The browser started again on its profile, the app open; `offline` before the page loads. */
async function reopen(profile, { offline = false } = {}) {
  const phone = await persistentPhone(profile);
  if (offline) await phone.context.setOffline(true);
  await phone.page.goto(server.url);
  await phone.page.getByTestId('nav-households').waitFor();
  await phone.page.evaluate(() => window.gridsync.ready);
  return phone;
}

test('a save cut short by closing the browser or crashing the tab loses nothing the app called saved', { timeout: 90_000 }, async () => {
  const profile = mkdtempSync(join(tmpdir(), 'gridsync-faults-save-'));
  let phone = await persistentPhone(profile);
  await signIn(phone.page, server.url, 'zhao');
  await phone.page.evaluate(() => navigator.serviceWorker.ready);
  await synced(phone.page);
  await recordVisit(phone.page, '中断保存前已保存的走访');

  // Each time: type a visit, tap save, and end the browser before (or while)
  // IndexedDB commits: closed at once or a few ms later, the tab crashed
  // right after the tap, or crashed while the tap's own task still runs (its
  // transaction can then never commit). What the app showed as saved is noted
  // as it happens.
  const cuts = [
    ['close', 0],
    ['crash', 0],
    ['crash in the save', 0],
    ['close', 8],
  ];
  const claimed = new Set();
  for (const [i, [how, delayMs]] of cuts.entries()) {
    await phone.context.exposeBinding('gsSawSaved', (_src, notes) => claimed.add(notes));
    await writeVisit(phone.page, `中断保存 #${i}（${how}）`);
    const cdp = how.startsWith('crash') ? await phone.context.newCDPSession(phone.page) : null;
    const tap = phone.page.evaluate((hang) => {
      // Reports the saved screen the moment it appears.
      new MutationObserver(() => {
        const done = document.querySelector('[data-testid=visit-saved]');
        if (done) window.gsSawSaved(document.querySelector('.card .pre')?.textContent || '');
      }).observe(document.body, { childList: true, subtree: true });
      document.querySelector('[data-testid=visit-save]').click();
      if (hang) for (const end = Date.now() + 10_000; Date.now() < end; );
    }, how === 'crash in the save');
    if (how === 'crash in the save') await new Promise((r) => setTimeout(r, 200));
    else await tap;
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    if (cdp) cdp.send('Page.crash').catch(() => {});
    tap.catch(() => {});
    await phone.context.close().catch(() => {});
    phone = await reopen(profile);
  }

  const mine = (await records(phone.page, 'visit_log')).filter((l) => l.record.fields.notes.startsWith('中断保存'));
  const notes = mine.map((l) => l.record.fields.notes);
  assert.ok(notes.includes('中断保存前已保存的走访'), 'the visit saved before is there');
  for (const n of claimed) assert.ok(notes.includes(n), `“${n}” was shown as saved and must be there`);
  assert.equal(new Set(notes).size, notes.length, 'no visit twice on the phone');
  const cut = cuts.map(([how], i) => `#${i} ${how}: ${notes.some((n) => n.startsWith(`中断保存 #${i}`)) ? 'kept' : 'not saved'}`);
  console.log(`# cut saves: ${cut.join('; ')}; ${claimed.size} had been shown as saved`);

  await synced(phone.page);
  const srv = await onServer();
  for (const n of notes) assert.equal(srv.visits(n).length, 1, `“${n}” reached the server once`);
  assert.equal(srv.visits('中断保存').length, notes.length, 'nothing else reached the server');
  await phone.context.close();
});

test('a sync cut short by closing the browser is completed by the next sync, nothing lost or doubled', { timeout: 90_000 }, async () => {
  const profile = mkdtempSync(join(tmpdir(), 'gridsync-faults-sync-'));
  let phone = await persistentPhone(profile);
  await signIn(phone.page, server.url, 'sun');
  await phone.page.evaluate(() => navigator.serviceWorker.ready);
  await synced(phone.page);
  const caseId = await reportCase(phone.page, '中断同步测试事件');
  await synced(phone.page);

  // 1. The request never reaches the server: held in the browser, then the browser closes.
  await phone.context.setOffline(true);
  await recordVisit(phone.page, '中断同步 A：请求未发出');
  await followUp(phone.page, caseId, '跟进 A1');
  await phone.page.getByTestId('followup-item').filter({ hasText: '跟进 A1' }).waitFor();
  let held = 0;
  await phone.context.route('**/v1/sync', () => held++);
  await phone.context.setOffline(false);
  await phone.page.evaluate(() => void window.gridsync.syncNow());
  await waitFor(() => held > 0);
  await phone.context.close();
  phone = await reopen(profile, { offline: true });
  assert.equal(await pending(phone.page), 2, 'the visit and the follow-up still wait');
  await phone.context.setOffline(false);
  await synced(phone.page);

  // 2. The server stores the push but its answer never arrives; then another
  //    follow-up is written before the next sync (the lost-response case).
  await phone.context.setOffline(true);
  await recordVisit(phone.page, '中断同步 B：回应丢失');
  await followUp(phone.page, caseId, '跟进 B1');
  await phone.page.getByTestId('followup-item').filter({ hasText: '跟进 B1' }).waitFor();
  let stored = 0;
  await phone.context.route('**/v1/sync', async (route) => {
    try {
      await route.fetch();
      stored++;
    } catch {
      // A request still in flight when the test closes the browser fails: that is the fault under test.
    }
  });
  await phone.context.setOffline(false);
  await phone.page.evaluate(() => void window.gridsync.syncNow());
  await waitFor(() => stored > 0);
  await phone.context.close();
  phone = await reopen(profile, { offline: true });
  assert.equal(await pending(phone.page), 2, 'unacknowledged: still waiting');
  await followUp(phone.page, caseId, '跟进 B2');
  await phone.page.getByTestId('followup-item').filter({ hasText: '跟进 B2' }).waitFor();
  await phone.context.setOffline(false);
  await synced(phone.page);
  assert.equal(await phone.page.getByTestId('rejection-banner').count(), 0, 'nothing refused');

  // 3. The answer arrives and the browser closes while the phone takes it in.
  await phone.context.setOffline(true);
  await recordVisit(phone.page, '中断同步 C：收到回应时关闭');
  let answered = 0;
  await phone.context.route('**/v1/sync', async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response }).catch(() => {});
    answered++;
  });
  await phone.context.setOffline(false);
  await phone.page.evaluate(() => void window.gridsync.syncNow());
  await waitFor(() => answered > 0);
  await phone.context.close();
  phone = await reopen(profile);
  await synced(phone.page);
  assert.equal(await phone.page.getByTestId('rejection-banner').count(), 0, 'nothing refused');

  const mine = await records(phone.page);
  const srv = await onServer();
  for (const n of ['中断同步 A', '中断同步 B', '中断同步 C']) {
    assert.equal(srv.visits(n).length, 1, `${n} reached the server once`);
  }
  const [c] = srv.cases('中断同步测试事件');
  assert.deepEqual(c.record.follow_ups.map((f) => f.note).sort(), ['跟进 A1', '跟进 B1', '跟进 B2'], 'every follow-up, once');
  const local = mine.find((l) => l.id === caseId);
  assert.deepEqual(local.record.follow_ups.map((f) => f.note).sort(), ['跟进 A1', '跟进 B1', '跟进 B2'], 'and the phone agrees');
  await phone.context.close();
});

async function waitFor(cond, ms = 20000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Fills the file system at `dir` to the last byte (again); returns how to give all the space back. */
function fillUp(dir) {
  const file = join(dir, `filler-${Date.now()}-${Math.random()}`);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (let size = chunk.length; size >= 512; ) {
      try {
        writeSync(fd, chunk, 0, size);
      } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
        size >>= 1;
      }
    }
  } finally {
    closeSync(fd);
  }
  return () => {
    for (const f of readdirSync(dir)) if (f.startsWith('filler-')) rmSync(join(dir, f));
  };
}

// Chromium 156 ignores Storage.overrideQuotaForOrigin for IndexedDB (Cache
// Storage honours it; IndexedDB writes of 5 MB went through at a quota of 1
// byte), so the phone's storage is made full for real: the browser's profile
// lives on a small tmpfs, filled up to the last byte.
test('a full phone storage: the save is refused with a clear message, memory keeps nothing unsaved, and saving works once space is back', { timeout: 90_000 }, async (t) => {
  const disk = mkdtempSync(join(tmpdir(), 'gridsync-faults-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'gridsync-e2e', disk], { stdio: 'ignore' });
  } catch {
    t.skip('needs to mount a small tmpfs (root or CAP_SYS_ADMIN)');
    return;
  }
  let phone;
  let keepFull = 0;
  try {
    phone = await persistentPhone(join(disk, 'profile'));
    const { page, context } = phone;
    await signIn(page, server.url, 'qian');
    await page.evaluate(() => navigator.serviceWorker.ready);
    await synced(page);
    const caseId = await reportCase(page, '存储已满测试事件');
    await synced(page);
    await context.setOffline(true);
    await recordVisit(page, '存储已满前保存的走访');
    await followUp(page, caseId, '存储已满前的跟进');
    await page.getByTestId('followup-item').filter({ hasText: '存储已满前的跟进' }).waitFor();
    const waiting = await pending(page);
    const before = (await records(page)).length;

    // The phone's storage fills up (photos, videos, other apps), and stays
    // full: whatever Chromium lets go of after a failed write is taken at once.
    const giveBack = fillUp(disk);
    keepFull = setInterval(() => fillUp(disk), 20);
    // Long notes that do not compress (Automerge deflates long text): they need new disk pages.
    const long = Array.from({ length: 4000 }, () => String.fromCodePoint(0x4e00 + Math.floor(Math.random() * 0x5000))).join('');
    await writeVisit(page, `存储已满时写的走访：${long}`);
    await page.getByTestId('visit-save').click();
    const banner = page.getByTestId('db-error');
    await banner.waitFor();
    assert.match(await banner.innerText(), /手机存储空间不足，记录未保存。请先同步，并清理手机空间/);
    await page.getByTestId('toast').filter({ hasText: '手机存储空间不足' }).waitFor();
    await shot(page, 'faults-storage-full-visit-toast');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'faults-storage-full-visit');
    assert.equal(await page.getByTestId('visit-saved').count(), 0, 'never shown as saved');
    assert.match(await page.getByTestId('visit-notes').inputValue(), /^存储已满时写的走访/, 'what was typed stays in the form');
    assert.equal((await records(page)).length, before, 'the unsaved visit is not on the phone');
    assert.equal(await pending(page), waiting, 'nor waiting to be sent');

    // A second try while still full, and a follow-up: refused the same way.
    await page.getByTestId('visit-save').click();
    await page.getByTestId('toast').filter({ hasText: '手机存储空间不足' }).waitFor();
    await followUp(page, caseId, `存储已满时的跟进：${long}`);
    await page.getByTestId('toast').filter({ hasText: '手机存储空间不足' }).waitFor();
    await shot(page, 'faults-storage-full-follow-up');
    const notes = async () => (await records(page, 'case')).find((l) => l.id === caseId).record.follow_ups.map((f) => f.note.split('：')[0]);
    assert.deepEqual(await notes(), ['存储已满前的跟进'], 'the unsaved follow-up is not kept');
    assert.equal(await pending(page), waiting);
    assert.equal((await records(page)).length, before);

    // As the message says, sync first: the work reaches the server although
    // the phone cannot note that it did (it is sent again later, once).
    await context.setOffline(false);
    await page.evaluate(() => window.gridsync.syncNow());
    assert.equal((await onServer()).visits('存储已满前保存的走访').length, 1, 'synced while the phone is full');
    await context.setOffline(true);

    // Space again: the same forms save, the message goes away, nothing earlier is lost.
    clearInterval(keepFull);
    giveBack();
    // The grid manager comes back to the app after freeing space.
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    await page.waitForFunction(() => !window.gridsync.writesBlocked(), null, { timeout: 10_000 });
    await page.getByTestId('followup-save').click();
    await page.getByTestId('followup-item').filter({ hasText: '存储已满时的跟进' }).waitFor();
    await banner.waitFor({ state: 'detached' });
    await writeVisit(page, '存储恢复后保存的走访');
    await page.getByTestId('visit-save').click();
    await page.getByTestId('visit-saved').waitFor();
    await page.reload();
    await page.evaluate(() => window.gridsync.ready);
    assert.equal(await pending(page), waiting + 2);
    assert.deepEqual(await notes(), ['存储已满前的跟进', '存储已满时的跟进']);
    await context.setOffline(false);
    await synced(page);
    const srv = await onServer();
    assert.equal(srv.visits('存储已满前保存的走访').length, 1);
    assert.equal(srv.visits('存储恢复后保存的走访').length, 1);
    assert.equal(srv.visits('存储已满时写的走访').length, 0, 'the refused visit never left the phone');
    assert.equal(srv.cases('存储已满测试事件')[0].record.follow_ups.length, 2);
  } finally {
    clearInterval(keepFull);
    await phone?.context.close().catch(() => {});
    execFileSync('umount', ['-l', disk], { stdio: 'ignore' });
  }
});

/** Makes the page's clock run `hours` off (Date.now and new Date), as on a phone set wrong. */
async function clockOff(context, hours) {
  await context.addInitScript((shift) => {
    const Real = Date;
    class Shifted extends Real {
      constructor(...args) {
        if (args.length === 0) super(Real.now() + shift);
        else super(...args);
      }
      static now() {
        return Real.now() + shift;
      }
    }
    globalThis.Date = Shifted;
  }, hours * 3_600_000);
}

test('phones whose clocks are six hours wrong: offline work is accepted and reaches the other phones', { timeout: 90_000 }, async () => {
  const fast = await newPhone(browser);
  await clockOff(fast.context, +6);
  await signIn(fast.page, server.url, 'feng');
  await synced(fast.page);
  assert.ok(Math.abs((await fast.page.evaluate(() => Date.now())) - Date.now() - 6 * 3_600_000) < 60_000, 'the clock is off');
  // The app installed (its screens cached) before the signal goes: within
  // 300 ms of signing in the screens are still being fetched.
  await fast.page.evaluate(() => navigator.serviceWorker.ready);
  await fast.context.setOffline(true);
  await recordVisit(fast.page, '时钟快6小时的走访');
  const caseId = await reportCase(fast.page, '时钟快6小时上报的事件');
  await followUp(fast.page, caseId, '快6小时的跟进');
  await fast.page.getByTestId('followup-item').filter({ hasText: '快6小时的跟进' }).waitFor();
  await fast.context.setOffline(false);
  await synced(fast.page);
  assert.equal(await fast.page.getByTestId('rejection-banner').count(), 0, 'nothing refused');
  // The phone learns the server's time from the sync and says what to do.
  const clock = fast.page.getByTestId('clock-banner');
  await clock.waitFor();
  assert.match(await clock.innerText(), /手机时间不准：比北京时间快约 6 小时.*请在手机“设置 > 日期和时间”中打开“自动设置时间”/);
  await fast.page.evaluate(() => window.scrollTo(0, 0));
  await shot(fast.page, 'faults-clock-wrong-banner');

  const slow = await newPhone(browser);
  await clockOff(slow.context, -6);
  await signIn(slow.page, server.url, 'chen');
  await synced(slow.page);
  await slow.page.evaluate(() => navigator.serviceWorker.ready);
  await slow.context.setOffline(true);
  await recordVisit(slow.page, '时钟慢6小时的走访');
  await followUp(slow.page, caseId, '慢6小时的跟进');
  await slow.page.getByTestId('followup-item').filter({ hasText: '慢6小时的跟进' }).waitFor();
  await slow.context.setOffline(false);
  await synced(slow.page);
  assert.equal(await slow.page.getByTestId('rejection-banner').count(), 0, 'nothing refused');
  assert.match(await slow.page.getByTestId('clock-banner').innerText(), /比北京时间慢约 6 小时/);

  // A phone with the right time sees everything, at the times the phones' clocks gave.
  const srv = await onServer();
  const [fastVisit] = srv.visits('时钟快6小时的走访');
  const [slowVisit] = srv.visits('时钟慢6小时的走访');
  assert.ok(fastVisit && slowVisit, 'both visits reached the server');
  const hoursOff = (ms) => Math.round((ms - Date.now()) / 3_600_000);
  assert.equal(hoursOff(fastVisit.record.fields.visited_at), 6);
  assert.equal(hoursOff(slowVisit.record.fields.visited_at), -6);
  const [c] = srv.cases('时钟快6小时上报的事件');
  assert.deepEqual(c.record.follow_ups.map((f) => f.note).sort(), ['快6小时的跟进', '慢6小时的跟进']);
  await observer.page.evaluate((id) => (location.hash = `#/case/${id}`), caseId);
  await observer.page.getByTestId('followup-item').nth(1).waitFor();
  await shot(observer.page, 'faults-clock-wrong-case-on-right-phone');
  const shown = await observer.page.getByTestId('followup-item').allInnerTexts();
  console.log(`# clock: right phone at ${new Date().toTimeString().slice(0, 5)} shows the follow-ups as ${JSON.stringify(shown)}`);
  await fast.context.close();
  await slow.context.close();
});

test('a device revoked while work waits: the app asks to sign in again, keeps the work, and pushes it under the new device', { timeout: 90_000 }, async () => {
  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, 'zhou');
  await synced(page);
  const caseId = await reportCase(page, '设备注销测试事件');
  await synced(page);
  await context.setOffline(true);
  await recordVisit(page, '设备注销前离线写的走访');
  await followUp(page, caseId, '设备注销前离线写的跟进');
  await page.getByTestId('followup-item').filter({ hasText: '设备注销前离线写的跟进' }).waitFor();
  const before = await records(page);
  assert.equal(await pending(page), 2);

  // The administrator revokes this phone's device meanwhile.
  const oldDevice = await page.evaluate(() => window.gridsync.phone.identity().device);
  cli(server.data, 'device', 'revoke', oldDevice);
  let syncs = 0;
  page.on('request', (r) => r.url().endsWith('/v1/sync') && syncs++);
  await context.setOffline(false);
  await page.evaluate(() => window.gridsync.syncNow());
  const banner = page.getByTestId('auth-banner');
  await banner.waitFor();
  assert.match(await banner.innerText(), /本机的登录已失效.*请重新登录/s);
  assert.match(await banner.innerText(), /本机还有 2 条记录未同步，仍保存在本机。用本人账号重新登录后会自动提交，不会丢失。/);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'faults-device-revoked-banner');
  const tried = syncs;
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(syncs <= tried + 1, `no retry loop against a revoked device (${syncs - tried} more requests)`);
  assert.equal(await pending(page), 2, 'the work is still there');

  // Someone else signs in on this phone: warned that the work would be deleted, and cancels.
  await page.getByTestId('auth-signin').click();
  await page.getByTestId('login-username').fill('zhao');
  await page.getByTestId('login-password').fill(PASSWORD);
  await shot(page, 'faults-device-revoked-sign-in');
  await page.getByTestId('login-submit').click();
  const dialog = page.getByTestId('dialog');
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /本机还有 2 条“周强”的记录没有同步到服务器。用其他账号登录会把它们从本机永久删除/);
  await shot(page, 'faults-other-person-sign-in-warning');
  await page.getByTestId('dialog-cancel').click();
  assert.match(await page.getByTestId('login-error').innerText(), /已取消。请用“周强”的账号登录/);
  assert.equal(await pending(page), 2, 'cancelling keeps the work');

  // The same person signs in again: nothing on the phone is wiped, and the work goes up.
  await page.getByTestId('login-username').fill('zhou');
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.waitForFunction((old) => window.gridsync.phone.identity().device !== old, oldDevice);
  assert.equal((await records(page)).length, before.length, 'every record is still on the phone');
  await synced(page);
  assert.equal(await page.getByTestId('rejection-banner').count(), 0, 'nothing refused');
  assert.equal(await page.getByTestId('auth-banner').count(), 0);

  const srv = await onServer();
  assert.equal(srv.visits('设备注销前离线写的走访').length, 1, 'the visit reached the server once');
  const [c] = srv.cases('设备注销测试事件');
  assert.deepEqual(c.record.follow_ups.map((f) => f.note), ['设备注销前离线写的跟进'], 'the follow-up, once');
  await context.close();
});

test('a disabled account: the app says to contact the administrator, and the work goes up once the account is enabled', { timeout: 90_000 }, async () => {
  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, 'wu');
  await synced(page);
  await context.setOffline(true);
  await recordVisit(page, '账号停用前离线写的走访');
  cli(server.data, 'person', 'disable', '--username', 'wu');
  await context.setOffline(false);
  await page.evaluate(() => window.gridsync.syncNow());
  const banner = page.getByTestId('auth-banner');
  await banner.waitFor();
  assert.match(await banner.innerText(), /此账号已被停用，无法同步，请联系管理员/);
  assert.match(await banner.innerText(), /本机还有 1 条记录未同步，仍保存在本机。请联系管理员恢复账号/);
  await shot(page, 'faults-person-disabled-banner');

  cli(server.data, 'person', 'enable', '--username', 'wu');
  await page.getByTestId('auth-signin').click();
  await page.getByTestId('login-username').fill('wu');
  await page.getByTestId('login-password').fill(PASSWORD);
  const oldDevice = await page.evaluate(() => window.gridsync.phone.identity().device);
  await page.getByTestId('login-submit').click();
  await page.waitForFunction((old) => window.gridsync.phone.identity().device !== old, oldDevice);
  await synced(page);
  assert.equal(await page.getByTestId('rejection-banner').count(), 0, 'nothing refused');
  assert.equal((await onServer()).visits('账号停用前离线写的走访').length, 1);
  await context.close();
});

test('a 交办 refused because the assignee was disabled meanwhile: the follow-ups written with it are kept, reach the server, and the phone says so', { timeout: 90_000 }, async () => {
  const community = GRID.split('/').slice(0, -1).join('/');
  cli(server.data, 'person', 'add', '--username', 'tian', '--name', '田野', '--role', 'field_staff', '--territory', GRID, '--password', PASSWORD);
  cli(server.data, 'person', 'add', '--username', 'heq', '--name', '何强', '--role', 'field_staff', '--territory', GRID, '--password', PASSWORD);
  cli(server.data, 'person', 'add', '--username', 'zheng', '--name', '郑主任', '--role', 'supervisor', '--territory', community, '--password', PASSWORD);
  const reporter = await newPhone(browser);
  await signIn(reporter.page, server.url, 'tian');
  const caseId = await reportCase(reporter.page, '交办被拒的路灯事件');
  await synced(reporter.page);

  const sup = await newPhone(browser);
  await signIn(sup.page, server.url, 'zheng');
  await synced(sup.page);
  await sup.page.evaluate((id) => (location.hash = `#/case/${id}`), caseId);
  await sup.page.getByTestId('case-move-accepted').click();
  await sup.page.getByTestId('dialog-ok').click();
  await sup.page.getByTestId('case-status').filter({ hasText: '已受理' }).waitFor();
  await synced(sup.page);

  // Offline: a follow-up, 交办 to 何强, another follow-up; meanwhile 何强 is disabled.
  await sup.context.setOffline(true);
  await followUp(sup.page, caseId, '已电话联系报事人');
  await sup.page.getByTestId('case-move-assigned').click();
  await sup.page.getByTestId('assignee-option').filter({ hasText: '何强' }).click();
  await sup.page.getByTestId('dialog-ok').click();
  await sup.page.getByTestId('case-assignee').filter({ hasText: '何强' }).waitFor();
  await followUp(sup.page, caseId, '明早安排到现场查看');
  cli(server.data, 'person', 'disable', '--username', 'heq');
  await sup.context.setOffline(false);
  await sup.page.evaluate(() => window.gridsync.syncNow());

  const banner = sup.page.getByTestId('rejection-banner');
  await banner.waitFor({ timeout: 20000 });
  assert.match(await banner.innerText(), /交办被拒的路灯事件/);
  assert.match(await sup.page.getByTestId('rejection-kept').innerText(), /已保留 2 条跟进记录，将重新上传/);
  await sup.page.waitForFunction(() => window.gridsync.phone.pendingChanges() === 0);
  await sup.page.evaluate((id) => (location.hash = `#/case/${id}`), caseId);
  await sup.page.getByTestId('case-status').filter({ hasText: '已受理' }).waitFor();
  assert.equal(await sup.page.getByTestId('followup-item').count(), 2, 'both follow-ups still on the phone');
  await sup.page.getByTestId('rejection-banner').scrollIntoViewIfNeeded();
  await shot(sup.page, 'faults-refused-handover-kept');

  const [onTheServer] = (await onServer()).cases('交办被拒的路灯事件');
  assert.deepEqual(onTheServer.record.follow_ups.map((f) => f.note), ['已电话联系报事人', '明早安排到现场查看']);
  assert.equal(onTheServer.record.status_log.filter((e) => e.to === 'assigned').length, 0, 'the refused 交办 is not there');
  await sup.context.close();
  await reporter.context.close();
});
