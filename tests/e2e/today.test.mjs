// 今日 / 待办 in Chromium (360×800, zh-CN) against the real server: the home
// screen per role, 民情日记, the promise list, what others changed since I
// last looked (with the tab's badge), the status bar's plain words, and the
// report's 践诺落实率. Reviewed screenshots: docs/screenshots/today-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPhone, signIn, synced, shot, shots, root } from './harness.mjs';

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

/** A screenshot kept for review in docs/screenshots/ as well. */
async function docShot(page, name, scrollTo) {
  await page.evaluate((testid) => {
    window.scrollTo(0, 0);
    if (testid) {
      // Just below the sticky status bar.
      const top = document.querySelector(`[data-testid=${testid}]`).getBoundingClientRect().top;
      window.scrollTo(0, top - document.getElementById('status').offsetHeight - 8);
    }
    document.querySelector('.toast')?.remove();
  }, scrollTo);
  await shot(page, name);
  copyFileSync(join(shots, `${name}.png`), join(root, 'docs', 'screenshots', `${name}.png`));
}

/** YYYY-MM-DD `days` from today, in the phone's time zone. */
const day = (page, days) =>
  page.evaluate((n) => {
    const d = new Date(Date.now() + n * 86_400_000);
    const p = (x) => String(x).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  }, days);

const count = async (locator) => Number(await locator.getAttribute('data-count'));

async function newHousehold(page, head, address) {
  await page.getByTestId('nav-households').click();
  await page.getByTestId('household-new').click();
  await page.getByTestId('household-address').fill(address);
  await page.getByTestId('household-head').fill(head);
  await page.getByTestId('household-save').click();
  await page.getByTestId('household-visit').waitFor();
}

/** On a household's page: a promise due `dueDay` (YYYY-MM-DD). */
async function promise(page, content, dueDay) {
  await page.getByTestId('promise-new').click();
  await page.getByTestId('promise-content').fill(content);
  await page.getByTestId('promise-due').fill(dueDay);
  await page.getByTestId('promise-save').click();
  await page.getByTestId('promise-item').filter({ hasText: content }).waitFor();
}

async function visit(page, notes, at) {
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  if (at) await page.getByTestId('visit-time').fill(at);
  await page.getByTestId('visit-notes').fill(notes);
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
}

async function reportCase(page, title, dueDay) {
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('case-new').click();
  await page.getByTestId('case-kind-hazard').click();
  await page.getByTestId('case-title').fill(title);
  if (dueDay) await page.getByTestId('case-due').fill(dueDay);
  await page.getByTestId('case-save').click();
  await page.getByTestId('case-detail-title').waitFor();
  return page.evaluate(() => location.hash.split('/')[2]);
}

const OVERDUE_CASE = '楼道杂物堵塞消防通道';
const OPEN_CASE = '夜间广场舞噪音扰民';

test('今日 is the first tab and the screen after sign-in: a grid manager sees overdue cases first, promises coming due, and today in 民情日记', async () => {
  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  assert.equal(await page.evaluate(() => location.hash), '#/today', 'sign-in lands on 今日');
  await page.getByTestId('today').waitFor();
  assert.equal(await page.locator('#nav a').first().getAttribute('data-testid'), 'nav-today', '今日 is the first tab');
  assert.equal(await page.getByTestId('nav-today').getAttribute('aria-current'), 'page');
  await synced(page);

  await newHousehold(page, '陈桂英', '东湖路12号3栋2单元401');
  await promise(page, '帮助申请临时救助', await day(page, -2)); // overdue
  await promise(page, '协调物业修好楼道灯', await day(page, 1)); // due tomorrow
  await promise(page, '下个月回访了解就业情况', await day(page, 20)); // not due for weeks
  await visit(page, '今天走访陈桂英，身体尚可。');
  await visit(page, '三天前走访王建国，反映下水道堵塞。', `${await day(page, -3)}T10:30`);
  await reportCase(page, OPEN_CASE);
  await reportCase(page, OVERDUE_CASE, await day(page, -3));

  await page.getByTestId('nav-today').click();
  const mine = page.getByTestId('today-my-cases');
  await mine.waitFor();
  assert.equal(await count(mine), 2, 'both open cases I reported');
  const rows = mine.getByTestId('todo-case');
  assert.match(await rows.first().innerText(), new RegExp(`${OVERDUE_CASE}[^]*超期 3 天`), 'the overdue case first, with how long');
  assert.match(await page.getByTestId('today-overdue-note').innerText(), /1 件事件已超期/);
  const promises = page.getByTestId('today-promises');
  assert.equal(await count(promises), 2, 'the overdue promise and the one due tomorrow');
  assert.match(await promises.innerText(), /帮助申请临时救助[^]*已超期/);
  assert.match(await promises.innerText(), /协调物业修好楼道灯[^]*即将到期/);
  assert.doesNotMatch(await promises.innerText(), /下个月回访/, 'a promise weeks away is not for today');
  const diary = page.getByTestId('today-diary');
  assert.equal(await count(diary), 1, "today's visit only");
  assert.match(await diary.innerText(), /今天走访陈桂英/);
  await docShot(page, 'today-grid-manager');

  // 民情日记: today, then the earlier day with a visit, and back.
  await page.getByTestId('today-diary-open').click();
  assert.equal(await page.getByTestId('diary-day').getAttribute('data-day'), await day(page, 0));
  assert.equal(await page.getByTestId('diary-entry').count(), 1);
  await page.getByTestId('diary-prev').click();
  await page.waitForFunction((d) => document.querySelector('[data-testid=diary-day]')?.dataset.day === d, await day(page, -3));
  assert.equal(await page.getByTestId('diary-entry').count(), 1);
  assert.match(await page.getByTestId('diary-entry').innerText(), /10:30[^]*下水道堵塞/);
  await docShot(page, 'today-diary');
  assert.ok(await page.getByTestId('diary-prev').isDisabled(), 'nothing earlier');
  await page.getByTestId('diary-next').click();
  await page.waitForFunction((d) => document.querySelector('[data-testid=diary-day]')?.dataset.day === d, await day(page, 0));

  // 承诺事项: every promise, by where it stands; an outcome recorded from the list moves it.
  await page.getByTestId('nav-today').click();
  await page.getByTestId('today-promises-all').click();
  const list = page.getByTestId('promise-list');
  await list.waitFor();
  assert.equal(await list.getByTestId('promise-row').count(), 3, '待落实: all three');
  const filter = async (name, n) => {
    await page.getByTestId(`promise-filter-${name}`).click();
    await page.waitForFunction(
      ([f, n]) => location.hash.endsWith(`filter=${f}`) && document.querySelectorAll('[data-testid=promise-list] [data-testid=promise-row]').length === n,
      [name, n],
    );
  };
  await filter('overdue', 1);
  await filter('soon', 1);
  await page.getByTestId('promise-row').getByTestId('promise-row-kept').click();
  await page.getByTestId('dialog-ok').click();
  await filter('kept', 1);
  await filter('overdue', 1);
  await page.getByTestId('promise-row').getByTestId('promise-row-not-kept').click();
  await page.getByTestId('dialog-input').fill('救助申请材料不全，已转街道');
  await page.getByTestId('dialog-ok').click();
  await filter('not_kept', 1);
  assert.match(await list.innerText(), /李红(（我）)? .*记录未践诺：救助申请材料不全/);
  await filter('overdue', 0);
  await filter('all', 3);
  await docShot(page, 'today-promises');
  await synced(page);
  await context.close();
});

test('the status bar counts records waiting, shows offline at a glance, confirms a sync; 我的 says plainly whether data may be cleared', async () => {
  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  await synced(page);
  assert.match(await page.getByTestId('status-pending').innerText(), /全部已同步/);

  await context.setOffline(true);
  await page.waitForFunction(() => document.getElementById('status').classList.contains('offline'));
  assert.equal(await page.getByTestId('status-online').innerText(), '离线');
  const bar = await page.evaluate(() => getComputedStyle(document.getElementById('status')).backgroundColor);
  // Three edits of two records: one new visit, two follow-ups on one case.
  await visit(page, '离线时的走访');
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('case-item').filter({ hasText: OPEN_CASE }).click();
  for (const note of ['已与广场舞队负责人沟通', '约定晚九点前结束']) {
    await page.getByTestId('followup-note').fill(note);
    await page.getByTestId('followup-save').click();
    await page.getByTestId('followup-item').filter({ hasText: note }).waitFor();
  }
  assert.equal(await page.evaluate(() => window.gridsync.phone.pendingChanges()), 3, 'three edits');
  assert.equal(await page.evaluate(() => window.gridsync.phone.pendingRecords()), 2, 'in two records');
  assert.equal(await page.getByTestId('status-pending').innerText(), '2 条记录待同步');
  await docShot(page, 'today-offline-bar');

  await context.setOffline(false);
  await page.waitForFunction(() => !document.getElementById('status').classList.contains('offline'));
  const online = await page.evaluate(() => getComputedStyle(document.getElementById('status')).backgroundColor);
  assert.notEqual(online, bar, 'the whole bar changes colour when offline');
  // Back online, the phone syncs by itself and says what it did.
  const done = page.getByTestId('sync-done');
  await done.waitFor();
  assert.match(await done.innerText(), /已同步 2 条/);
  assert.match(await page.getByTestId('status-pending').innerText(), /全部已同步/);
  await docShot(page, 'today-synced-bar');
  // 立即同步 says it too.
  await page.getByTestId('followup-note').fill('已回访，居民满意');
  await page.getByTestId('followup-save').click();
  await page.getByTestId('status-pending').filter({ hasText: '1 条记录待同步' }).waitFor();
  await page.getByTestId('sync-now').click();
  await page.getByTestId('toast').filter({ hasText: '已同步 1 条' }).waitFor();

  await page.getByTestId('nav-me').click();
  const storage = page.getByTestId('me-storage');
  await page.waitForFunction(() => document.querySelector('[data-testid=me-storage]')?.dataset.persisted);
  const words = await storage.innerText();
  assert.match(words, /浏览器(不会自行清除|可能清除)本机的记录/);
  assert.doesNotMatch(await page.locator('main').innerText(), /未固定/);
  await context.close();
});

const NEW_BY_ZHOU = '电动车在楼道内充电';

test('what others changed since I last looked: a badge on 今日, the changes named there, gone once seen (kept per person across a reload)', async () => {
  const a = await newPhone(browser);
  await signIn(a.page, server.url, 'li');
  await synced(a.page);
  const badge = a.page.getByTestId('nav-today-badge');
  assert.ok(await badge.isHidden(), 'a first download is not news');
  await a.page.getByTestId('nav-visits').click();

  // A colleague in the same grid follows up li's case and reports a new one.
  const b = await newPhone(browser);
  await signIn(b.page, server.url, 'zhou');
  await synced(b.page);
  await b.page.getByTestId('nav-cases').click();
  await b.page.getByTestId('case-item').filter({ hasText: OPEN_CASE }).click();
  await b.page.getByTestId('followup-note').fill('周强已到现场查看');
  await b.page.getByTestId('followup-save').click();
  await b.page.getByTestId('followup-item').filter({ hasText: '周强已到现场查看' }).waitFor();
  await reportCase(b.page, NEW_BY_ZHOU);
  await synced(b.page);

  await a.page.evaluate(() => window.gridsync.syncNow());
  await badge.waitFor();
  assert.equal(await badge.innerText(), '2');
  await docShot(a.page, 'today-badge');

  await a.page.getByTestId('nav-today').click();
  const changes = a.page.getByTestId('today-changes');
  await changes.waitFor();
  assert.equal(await count(changes), 2);
  const who = await changes.getByTestId('change-who').allInnerTexts();
  assert.ok(who.some((t) => /^周强 新增跟进/.test(t)), `the follow-up, by name: ${who}`);
  assert.ok(who.some((t) => /^周强 新建/.test(t)), `the new case, by name: ${who}`);
  assert.match(await changes.innerText(), new RegExp(OPEN_CASE));
  assert.match(await changes.innerText(), new RegExp(NEW_BY_ZHOU));
  assert.ok(await badge.isHidden(), 'looking at 今日 clears the badge');
  await docShot(a.page, 'today-changes', 'today-changes');

  // Seen: not news any more, also after the app is opened again.
  await a.page.getByTestId('nav-cases').click();
  await a.page.getByTestId('nav-today').click();
  assert.equal(await count(a.page.getByTestId('today-changes')), 0);
  await a.page.reload();
  await a.page.evaluate(() => window.gridsync.ready);
  await a.page.getByTestId('nav-visits').click();
  assert.ok(await badge.isHidden());
  await b.page.getByTestId('followup-note').fill('已通知物业清理');
  await b.page.getByTestId('followup-save').click();
  await synced(b.page);
  await a.page.evaluate(() => window.gridsync.syncNow());
  await a.page.waitForFunction(() => document.querySelector('[data-testid=nav-today-badge]').textContent === '1');
  await a.context.close();
  await b.context.close();
});

test("a supervisor's 今日: cases awaiting 受理 and overdue ones, each with its grid and reporter named", async () => {
  const sup = await newPhone(browser);
  await signIn(sup.page, server.url, 'wang');
  await synced(sup.page);
  const today = sup.page.getByTestId('today');
  await today.waitFor();
  assert.equal(await today.getAttribute('data-role'), 'supervisor');
  const awaiting = sup.page.getByTestId('today-awaiting');
  assert.equal(await count(awaiting), 3, 'the three cases reported in the grid');
  const row = (section, title) => sup.page.getByTestId(section).getByTestId('todo-case').filter({ hasText: title });
  assert.match(await row('today-awaiting', OVERDUE_CASE).getByTestId('todo-case-where').innerText(), /^东湖社区第一网格 · 李红 上报/);
  assert.match(await row('today-awaiting', NEW_BY_ZHOU).getByTestId('todo-case-where').innerText(), /^东湖社区第一网格 · 周强 上报/);
  await docShot(sup.page, 'today-supervisor');

  // 受理 the overdue case: it leaves 待受理 for 超期未办结.
  await row('today-awaiting', OVERDUE_CASE).click();
  await sup.page.getByTestId('case-move-accepted').click();
  await sup.page.getByTestId('dialog-ok').click();
  await sup.page.getByTestId('case-status').filter({ hasText: '已受理' }).waitFor();
  await sup.page.getByTestId('nav-today').click();
  assert.equal(await count(sup.page.getByTestId('today-awaiting')), 2);
  assert.match(await row('today-overdue', OVERDUE_CASE).innerText(), /超期 3 天/);
  await sup.context.close();
});

test("交办 names an assignee, and the case is on the assignee's 今日 under 交办给我的", async () => {
  const sup = await newPhone(browser);
  await signIn(sup.page, server.url, 'wang');
  await synced(sup.page);
  await sup.page.getByTestId('today-awaiting').getByTestId('todo-case').filter({ hasText: OPEN_CASE }).click();
  await sup.page.getByTestId('case-move-assigned').click();
  await sup.page.getByTestId('assignee-option').filter({ hasText: '李红' }).click();
  await sup.page.getByTestId('dialog-ok').click();
  await sup.page.getByTestId('case-status').filter({ hasText: '已交办' }).waitFor();
  await synced(sup.page);

  const field = await newPhone(browser);
  await signIn(field.page, server.url, 'li');
  await synced(field.page);
  const assigned = field.page.getByTestId('today-assigned');
  await assigned.waitFor();
  assert.equal(await count(assigned), 1);
  assert.match(await assigned.innerText(), new RegExp(`${OPEN_CASE}[^]*王主任 交办给我`));
  assert.equal(await count(field.page.getByTestId('today-my-cases')), 1, 'the other case I reported stays under 我的待办事件');
  await docShot(field.page, 'today-assigned', 'today-assigned');
  await sup.context.close();
  await field.context.close();
});

test('践诺落实率 counts only promises already due, and the report says so in words', async () => {
  // Two more promises, both already due and kept. With the three from the
  // first test (one overdue and not kept, one kept before it is due, one due in
  // weeks) that is 5 made, 3 due, 2 of them kept: 66.7 %. Counting every
  // promise made would give 3 of 5 kept, 60.0 %.
  const field = await newPhone(browser);
  await signIn(field.page, server.url, 'li');
  await synced(field.page);
  await field.page.getByTestId('nav-households').click();
  await field.page.getByTestId('household-item').filter({ hasText: '陈桂英' }).click();
  await promise(field.page, '帮忙联系社区医生上门', await day(field.page, -1));
  await promise(field.page, '送去冬季慰问物资', await day(field.page, -2));
  await field.page.evaluate(() => (location.hash = '#/promises?filter=overdue'));
  for (let left = 2; left > 0; left--) {
    await field.page.waitForFunction((n) => document.querySelectorAll('[data-testid=promise-row]').length === n, left);
    const row = field.page.getByTestId('promise-row').filter({ hasText: /帮忙联系社区医生上门|送去冬季慰问物资/ }).first();
    await row.getByTestId('promise-row-kept').click();
    await field.page.getByTestId('dialog-ok').click();
  }
  await field.page.waitForFunction(() => document.querySelectorAll('[data-testid=promise-row]').length === 0);
  await synced(field.page);
  await field.context.close();

  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, 'admin');
  // An administrator's 今日 leads to the figures. Over a whole city, no records are kept on the device:
  // 今日 says so and the record tabs are gone.
  assert.equal(await page.getByTestId('today').getAttribute('data-role'), 'administrator');
  await page.getByTestId('today-online-admin').waitFor();
  assert.equal(await page.getByTestId('today').getAttribute('data-replica'), 'none');
  assert.ok(await page.getByTestId('nav-cases').isHidden() && await page.getByTestId('nav-households').isHidden());
  assert.equal(await page.evaluate(() => window.gridsync.phone.records().length), 0, 'nothing of the city on the device');
  await page.getByTestId('today-reports').click();
  await page.getByTestId('report-table').waitFor({ timeout: 20000 });
  const summary = await page.getByTestId('report-summary').innerText();
  assert.match(summary, /66\.7%\s*践诺落实率\s*已到期 3 项/);
  assert.match(await page.getByTestId('report-promise-note').innerText(), /已到期的承诺中已践诺的比例。期限未到的承诺不计入/);
  await docShot(page, 'today-report-promises');
  await context.close();
});

test('民情日记 reads the newest 7 days with visits; 查看更早 reads 7 more, and a day further back still opens', { timeout: 120_000 }, async () => {
  const srv = await startServer();
  try {
    const { page, context } = await newPhone(browser);
    await signIn(page, srv.url, 'li');
    await synced(page);
    // One visit at 09:00 on each of the 10 days before today.
    await page.evaluate(async () => {
      const p = window.gridsync.phone;
      for (let n = 1; n <= 10; n++) {
        const d = new Date();
        d.setDate(d.getDate() - n);
        d.setHours(9, 0, 0, 0);
        p.create({ type: 'visit_log', household: null, visited_at: d.getTime(), kind: 'routine', location: null, notes: `${n}天前的走访`, concerns: [], findings: '' }, null, Date.now());
      }
      await window.gridsync.flush();
    });
    // A day beyond the 7 days read opens by its address; ‹ goes on to the day before it.
    await page.evaluate((d) => (location.hash = `#/diary?day=${d}`), await day(page, -9));
    await page.waitForFunction((d) => document.querySelector('[data-testid=diary-day]')?.dataset.day === d, await day(page, -9));
    assert.match(await page.getByTestId('diary-entry').innerText(), /09:00[^]*9天前的走访/);
    await page.getByTestId('diary-prev').click();
    await page.waitForFunction((d) => document.querySelector('[data-testid=diary-day]')?.dataset.day === d, await day(page, -10));
    assert.equal(await page.getByTestId('diary-entry').count(), 1);
    assert.ok(await page.getByTestId('diary-prev').isDisabled(), 'nothing earlier');

    await page.evaluate(() => (location.hash = '#/diary'));
    await page.waitForFunction((d) => document.querySelector('[data-testid=diary-day]')?.dataset.day === d, await day(page, 0));
    const chips = page.getByTestId('diary-day-link');
    assert.equal(await chips.count(), 7, 'the newest 7 days with visits');
    assert.equal(await chips.first().getAttribute('data-day'), await day(page, -1));
    await page.getByTestId('diary-older').click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=diary-day-link]').length === 10);
    assert.equal(await page.getByTestId('diary-older').count(), 0, 'no earlier days left');
    assert.equal(await chips.last().getAttribute('data-day'), await day(page, -10));
    await context.close();
  } finally {
    srv.stop();
  }
});
