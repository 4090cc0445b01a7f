// The record forms of a grid manager's day (issue 11), in Chromium at 360×800:
// a double tap saves once, drafts survive tabs and reloads, duplicates are
// voided and leave the report, concurrent title edits are shown and settled,
// people and places are named, households are found among thousands, and
// required choices cannot be emptied. Reviewed screenshots: docs/screenshots/forms-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, newPhone, signIn, synced, root } from './harness.mjs';

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

/** A phone signed in as `username`, synced. */
async function phoneOf(username) {
  const phone = await newPhone(browser);
  await signIn(phone.page, server.url, username);
  await synced(phone.page);
  return phone;
}

/** Creates a household through the form; returns its id. */
async function addHousehold(page, head, address) {
  await page.getByTestId('nav-households').click();
  await page.getByTestId('household-new').click();
  await page.getByTestId('household-head').fill(head);
  await page.getByTestId('household-address').fill(address);
  await page.getByTestId('household-save').click();
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
