// The administration console (管理控制台) end to end: Debian's Chromium against
// the real gridsync-server binary, at a desktop's 1280×800 and a phone's
// 360×800. An administrator searches, disables and re-enables a person,
// resets a password (the new one signs in), moves a person, revokes a device,
// adds a territory, reads the audit lines and downloads them as CSV, and
// imports a household ledger (a dry run that shows the bad row, then a clean
// file confirmed with the progress bar reaching 100 %). A grid manager has no
// console. Screenshots go to docs/screenshots/admin-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPhone, signIn, root } from './harness.mjs';

let server;
let browser;
const docs = join(root, 'docs', 'screenshots');

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  mkdirSync(docs, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.stop();
});

const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, isMobile: false, hasTouch: false },
  phone: {},
};

const docShot = (page, name) => page.screenshot({ path: join(docs, `admin-${name}.png`) });

async function signInApi(username, password, device = '测试手机') {
  const r = await fetch(`${server.url}/v1/auth/sign-in`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password, device_name: device }),
  });
  return { status: r.status, body: await r.json() };
}

async function openConsole(page, tab) {
  await page.goto(`${server.url}/#/admin/${tab}`);
  await page.getByTestId(`console-${tab}`).waitFor();
}

const row = (page, username) => page.locator(`[data-testid="person-row"][data-username="${username}"]`);

async function search(page, q) {
  await page.getByTestId('people-q').fill(q);
  await page.getByTestId('people-search').click();
  await page.getByTestId('people-total').and(page.locator('[data-total="1"]')).waitFor();
}

/** A valid 18-character ID number (GB 11643 check digit) ending in `n`. */
function idNumber(n) {
  const body = `42090219800101${String(n).padStart(3, '0')}`;
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...body].reduce((s, c, i) => s + Number(c) * w[i], 0);
  return body + '10X98765432'[sum % 11];
}

/** A household ledger as UTF-8 CSV with a BOM (iconv-lite, for GBK, is not installed here). */
function ledger(rows) {
  const header = '户号,所属网格,地址,姓名,与户主关系,身份证号,联系电话,标签,备注';
  return Buffer.from('\uFEFF' + [header, ...rows.map((r) => r.join(','))].join('\r\n') + '\r\n', 'utf8');
}

for (const [name, options] of Object.entries(VIEWPORTS)) {
  test(`${name}: an administrator manages people, devices, territories and reads the audit log`, async () => {
    // Who this viewport works on (the other viewport works on someone else).
    const who = name === 'desktop' ? 'zhou' : 'wu';
    const whoName = name === 'desktop' ? '周强' : '吴敏';
    const grid = name === 'desktop' ? 'g03' : 'g04';
    const { context, page } = await newPhone(browser, options);
    await signIn(page, server.url, 'admin');
    await page.goto(`${server.url}/#/me`);
    await page.getByTestId('me-console').click();
    await page.getByTestId('console-territories').waitFor();

    // 区域: the tree with counts, and a new grid.
    await page.locator('[data-testid="territory-node"][data-path="xg/xn/sy/dh/g01"] [data-testid="territory-counts"]').first().waitFor();
    const counts = await page.locator('[data-testid="territory-node"][data-path="xg/xn/sy/dh"] > .tree-node [data-testid="territory-counts"]').textContent();
    assert.match(counts, /人员 4/, 'the community counts its people (3 grid staff + 1 supervisor)');
    await page.getByTestId('territory-parent').selectOption('xg/xn/sy/dh');
    await page.getByTestId('territory-code').fill(grid);
    await page.getByTestId('territory-name').fill(`东湖社区新网格${grid}`);
    await page.getByTestId('territory-add').click();
    await page.locator(`[data-testid="territory-node"][data-path="xg/xn/sy/dh/${grid}"]`).waitFor();
    await docShot(page, `${name}-territories`);

    // 人员: search, disable (asks first), enable.
    await page.getByTestId('console-tab-people').click();
    await page.getByTestId('people-table').waitFor();
    await search(page, whoName);
    await row(page, who).getByTestId('person-disable').click();
    await page.getByTestId('dialog').waitFor();
    assert.match(await page.getByTestId('dialog').textContent(), /停用/);
    await page.getByTestId('dialog-ok').click();
    await row(page, who).getByTestId('person-enable').waitFor();
    assert.equal(await row(page, who).getByTestId('person-state').textContent(), '已停用');
    assert.equal((await signInApi(who, 'e2e-password-1')).status, 401, 'a disabled person cannot sign in');
    await docShot(page, `${name}-people`);
    await row(page, who).getByTestId('person-enable').click();
    await row(page, who).getByTestId('person-disable').waitFor();
    assert.equal(await row(page, who).getByTestId('person-state').textContent(), '正常');

    // Reset the password: shown once, with a copy button; it signs in.
    await row(page, who).getByTestId('person-reset').click();
    await page.getByTestId('dialog-ok').click();
    const password = (await page.getByTestId('secret-value').textContent()).trim();
    assert.ok(await page.getByTestId('secret-copy').isVisible());
    await docShot(page, `${name}-password`);
    await page.getByTestId('secret-done').click();
    const signed = await signInApi(who, password);
    assert.equal(signed.status, 200, 'the new password signs in');

    // Move to the new grid.
    await row(page, who).getByTestId('person-move').click();
    await page.getByTestId('move-territory').selectOption(`xg/xn/sy/dh/${grid}`);
    await page.getByTestId('move-ok').click();
    await row(page, who).locator('td[data-label="区域"]', { hasText: grid }).waitFor();

    // 设备: the device just registered is listed with when it was last seen (it syncs once), then revoked.
    const seen = await fetch(`${server.url}/v1/directory`, { headers: { Authorization: `Bearer ${signed.body.token}` } });
    assert.equal(seen.status, 200);
    await page.getByTestId('console-tab-devices').click();
    const device = page.locator(`[data-testid="device-row"][data-id="${signed.body.device}"]`);
    await device.waitFor();
    assert.doesNotMatch(await device.locator('td[data-label="最近联网"]').textContent(), /未知/);
    assert.equal(await device.locator('td[data-label="待同步"]').textContent(), '未知');
    await docShot(page, `${name}-devices`);
    await device.getByTestId('device-revoke').click();
    await page.getByTestId('dialog-ok').click();
    await device.waitFor({ state: 'detached' });
    const r = await fetch(`${server.url}/v1/directory`, { headers: { Authorization: `Bearer ${signed.body.token}` } });
    assert.equal(r.status, 401, 'the revoked device is refused');

    // 审计: the lines, filtered, and the CSV.
    await page.getByTestId('console-tab-audit').click();
    await page.getByTestId('audit-table').waitFor();
    const text = await page.getByTestId('audit-table').textContent();
    for (const action of ['person.disable', 'person.enable', 'person.reset_password', 'person.move', 'device.revoke', 'territory.add']) {
      assert.ok(text.includes(action), `the audit shows ${action}`);
    }
    await page.getByTestId('audit-action').selectOption('person.');
    await page.getByTestId('audit-search').click();
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="audit-row"] code')].every((c) => c.textContent.startsWith('person.')));
    await docShot(page, `${name}-audit`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('audit-csv').click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    assert.ok(csv.startsWith('\uFEFF序号,时间(UTC),操作人,操作,详情'), csv.slice(0, 80));
    assert.ok(csv.includes('person.move') && !csv.includes('territory.add'), 'the CSV has the filtered lines');
    await context.close();
  });

  test(`${name}: an administrator imports a household ledger: dry run with a bad row, then a clean file to 100 %`, async () => {
    const n = name === 'desktop' ? 100 : 200;
    const { context, page } = await newPhone(browser, options);
    await signIn(page, server.url, 'admin');
    await openConsole(page, 'imports');
    await page.getByTestId('import-kind-households').click();
    const [template] = await Promise.all([page.waitForEvent('download'), page.getByTestId('template-csv').click()]);
    assert.match(readFileSync(await template.path(), 'utf8'), /所属网格/, 'the template has Chinese headers');

    const g = 'xg/xn/sy/dh/g01';
    const good = (i, head) => [`DH-${n + i}`, g, `东湖路${n + i}号`, head, '户主', idNumber(n + i), '13800138000', '独居老人', ''];
    const bad = ['', g, '东湖路999号', '赵四', '户主', '420902198001010001', '', '', '']; // wrong check digit
    await page.getByTestId('import-file').setInputFiles({ name: '人口信息表-有错.csv', mimeType: 'text/csv', buffer: ledger([good(1, '李秀英'), bad]) });
    await page.getByTestId('import-upload').click();
    await page.getByTestId('import-problems').waitFor();
    const problem = page.getByTestId('import-problem').first();
    assert.equal(await problem.locator('td[data-label="行"]').textContent(), '3');
    assert.equal(await problem.locator('td[data-label="列"]').textContent(), '身份证号');
    assert.equal(await page.getByTestId('import-confirm').count(), 0, 'a file with problems is not confirmed as is');
    await docShot(page, `${name}-import-dry-run`);

    await page.getByTestId('import-file').setInputFiles({
      name: '人口信息表.csv', mimeType: 'text/csv', buffer: ledger([good(1, '李秀英'), good(2, '王建国'), good(3, '陈桂英')]),
    });
    await page.getByTestId('import-upload').click();
    await page.getByTestId('import-clean').waitFor();
    assert.equal(await page.getByTestId('import-create').getAttribute('data-count'), '3');
    await page.getByTestId('import-confirm').click();
    await page.getByTestId('import-done').waitFor({ timeout: 30000 });
    assert.equal(await page.getByTestId('import-progress').getAttribute('data-pct'), '100');
    await page.locator('[data-testid="history-row"][data-status="done"]').first().waitFor();
    await docShot(page, `${name}-import-done`);
    await context.close();
  });
}

test('a roster import gives the initial passwords file once, and a new person signs in with it', async () => {
  const { context, page } = await newPhone(browser, VIEWPORTS.desktop);
  await signIn(page, server.url, 'admin');
  await openConsole(page, 'imports');
  await page.getByTestId('import-kind-people').click();
  const roster = Buffer.from('\uFEFF姓名,登录名,角色,所属区域,手机号\r\n孙丽,sunli,网格员,xg/xn/sy/dh/g02,13800138001\r\n', 'utf8');
  await page.getByTestId('import-file').setInputFiles({ name: '网格员名册.csv', mimeType: 'text/csv', buffer: roster });
  await page.getByTestId('import-upload').click();
  await page.getByTestId('import-clean').waitFor();
  await page.getByTestId('import-confirm').click();
  await page.getByTestId('import-done').waitFor({ timeout: 30000 });
  await page.getByTestId('import-report').getByTestId('import-passwords').click();
  // Listen before the tap that starts the download: a fast one would otherwise be missed.
  const downloading = page.waitForEvent('download');
  await page.getByTestId('dialog-ok').click();
  const download = await downloading;
  const csv = readFileSync(await download.path(), 'utf8');
  const lines = csv.replace(/^\uFEFF/, '').split(/\r?\n/).map((l) => l.split(','));
  const column = lines[0].indexOf('初始密码');
  const line = lines.find((l) => l[0] === 'sunli');
  assert.ok(column >= 0 && line, csv);
  const password = line[column];
  assert.equal((await signInApi('sunli', password)).status, 200, 'the initial password signs in');
  await page.getByTestId('import-report').getByText('初始密码已下载').waitFor();
  const again = await fetch(`${server.url}/v1/admin/imports/${await page.getByTestId('import-run').getAttribute('data-id')}/passwords.csv`, {
    headers: { Authorization: `Bearer ${await page.evaluate(() => window.gridsync.phone.identity().token)}` },
  });
  assert.equal(again.status, 404, 'once only');
  await context.close();
});

test('a grid manager has no console', async () => {
  const { context, page } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  await page.goto(`${server.url}/#/me`);
  await page.getByTestId('me-name').waitFor();
  assert.equal(await page.getByTestId('me-console').count(), 0, 'no entry in 我的');
  await page.goto(`${server.url}/#/admin/people`);
  await page.getByTestId('console-refused').waitFor();
  const token = await page.evaluate(() => window.gridsync.phone.identity().token);
  const r = await fetch(`${server.url}/v1/admin/people/search`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 403, 'and the server refuses the routes');
  await context.close();
});
