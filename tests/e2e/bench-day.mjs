// A grid manager's day of work, then the sync that brings it to the server:
// offline all day, the phone records 30 visits, reports 5 cases (from visits)
// and makes 10 promises to households; then it comes online and syncs. The
// figure is the time from coming online to every change acknowledged by the
// server (phone.pendingChanges() == 0). Runs as this machine is (desktop) and
// as a mid-range phone on a weak network (phone: CPU 4×, slow 3G, over the
// DevTools protocol; the CPU is slow all day, the network only after going online).
// Real server (GRIDSYNC_SERVER_BIN, else target/debug), real headless Chromium.
//   --mode ui   (default) the work is done by tapping through the app's screens;
//               a kind whose screens fail (changed test ids) is finished through
//               window.gridsync.phone and the output says so (driven_by)
//   --mode api  every record made through window.gridsync.phone.create
// Prints one JSON line per profile and a summary.
// Run: node tests/e2e/bench-day.mjs [--mode ui|api] [--profiles desktop,phone]
//      [--latency 400] [--households 300] [--visits 30] [--cases 5] [--promises 10]
//      [--history 0]  (earlier visit logs of the same person already on the phone)
import { startServer, launchBrowser, newPhone, signIn, synced, shot } from './harness.mjs';
import { arg, profiles, throttler, traffic, measuredCommit, serverBuild, stats, load } from './bench-lib.mjs';

const mode = arg('mode', 'ui');
const latency = Number(arg('latency', 400));
const wanted = arg('profiles', 'desktop,phone').split(',');
const HOUSEHOLDS = Number(arg('households', 300));
const HISTORY = Number(arg('history', 0)); // the person's earlier visit logs, on the phone and synced before the day
const DAY = { visits: Number(arg('visits', 30)), cases: Number(arg('cases', 5)), promises: Number(arg('promises', 10)) };
const P = profiles(latency);
const STEP = { timeout: 20_000 };
const common = { commit: measuredCommit(), server: serverBuild() };
// One field worker of the grid per profile: each run is a fresh phone.
const PERSON = { desktop: 'zhou', phone: 'wu' };

const NOTES = [
  '走访独居老人，身体尚可，子女每周探望一次。反映楼道灯坏了，晚上出入不便。',
  '入户核实低保家庭情况，家中两人，收入无变化，已告知年审时间。',
  '了解租户情况，新搬来一户三口之家，已登记联系方式，提醒消防安全。',
  '回访上次反映的下水道堵塞问题，物业已疏通，群众表示满意。',
];

async function headSeq(url) {
  const r = await fetch(`${url}/healthz`);
  return (await r.json()).head_seq;
}

// Records of each kind the phone held before the day (others' work, pulled at sign-in).
const base = { visit_log: 0, case: 0, promise: 0 };

/** This day's records of `kind` so far. */
async function count(page, kind) {
  return (await page.evaluate((k) => window.gridsync.phone.records(k).length, kind)) - base[kind];
}

/** Makes `n` records of `kind` through window.gridsync.phone, each saved to IndexedDB like a form's save. */
async function viaApi(page, kind, n, start, saveMs) {
  if (n <= 0) return;
  const ms = await page.evaluate(async ({ kind, n, start, NOTES }) => {
    const took = [];
    const p = window.gridsync.phone;
    const hh = p.records('household').map((r) => r.id);
    const visits = p.records('visit_log').map((r) => r.id); // newest first: this day's
    for (let i = start; i < start + n; i++) {
      const household = hh[i % hh.length] || null;
      const rec =
        kind === 'visit_log'
          ? { type: 'visit_log', household, visited_at: Date.now(), kind: 'care', notes: `${i + 1}. ${NOTES[i % NOTES.length]}`, concerns: i % 2 ? ['楼道灯'] : [] }
          : kind === 'case'
            ? { type: 'case', kind: 'hazard', title: `楼道灯损坏 ${i + 1}`, description: '三单元二楼至四楼楼道灯均不亮，老人夜间出入不便。', household, visit: visits[i] ?? null, due_at: null }
            : { type: 'promise', content: `一周内协调物业修好楼道灯 ${i + 1}`, household, due_at: Date.now() + 7 * 86_400_000 };
      const t0 = performance.now();
      p.create(rec, null, Date.now());
      await window.gridsync.flush();
      took.push(Math.round(performance.now() - t0));
    }
    return took;
  }, { kind, n, start, NOTES });
  saveMs[{ visit_log: 'visit', case: 'case', promise: 'promise' }[kind]].push(...ms);
}

/** The day's work by tapping through the screens; returns what it did and how long saves took. */
async function viaUi(page, driven, saveMs) {
  // Visits (走访 → 记录走访), and every sixth one reported on as a case (上报事件).
  let cases = 0;
  try {
    for (let i = await count(page, 'visit_log'); i < DAY.visits; i++) {
      await page.getByTestId('nav-visits').click(STEP);
      await page.getByTestId('visit-new').click(STEP);
      await page.getByTestId('visit-kind-care').click(STEP);
      await page.getByTestId('visit-notes').fill(`${i + 1}. ${NOTES[i % NOTES.length]}`, STEP);
      if (i % 2) {
        await page.getByTestId('visit-concern-input').fill('楼道灯不亮', STEP);
        await page.getByTestId('visit-concern-add').click(STEP);
      }
      await page.getByTestId('visit-save').click({ ...STEP, trial: true }); // tappable (no toast over it)
      const t0 = Date.now();
      await page.getByTestId('visit-save').click(STEP);
      await page.getByTestId('visit-saved').waitFor(STEP);
      saveMs.visit.push(Date.now() - t0);
      if (cases < DAY.cases && i % 6 === 5) {
        await page.getByTestId('visit-report-case').click(STEP);
        await page.getByTestId('case-kind-hazard').click(STEP);
        await page.getByTestId('case-title').fill(`楼道灯损坏，老人夜间出入不便 ${cases + 1}`, STEP);
        await page.getByTestId('case-description').fill('三单元二楼至四楼楼道灯均不亮。', STEP);
        await page.getByTestId('case-save').click({ ...STEP, trial: true }); // tappable (no toast over it)
        const t1 = Date.now();
        await page.getByTestId('case-save').click(STEP);
        await page.getByTestId('case-detail-title').waitFor(STEP);
        saveMs.case.push(Date.now() - t1);
        cases++;
      }
    }
    driven.visits = 'ui';
    driven.cases = 'ui';
  } catch (e) {
    await shot(page, 'bench-day-ui-failed-visits').catch(() => {});
    driven.visits = `api after ui failed: ${e.message.split('\n')[0]}`;
    driven.cases = driven.visits;
  }
  // Promises: on a household's page (住户 → 新增承诺事项).
  try {
    const hh = await page.evaluate(() => window.gridsync.phone.records('household').map((r) => r.id));
    for (let j = await count(page, 'promise'); j < DAY.promises; j++) {
      await page.evaluate((id) => (location.hash = `#/household/${id}`), hh[j % hh.length]);
      await page.getByTestId('promise-new').click(STEP);
      await page.getByTestId('promise-content').fill(`一周内协调物业修好楼道灯 ${j + 1}`, STEP);
      await page.getByTestId('promise-save').click({ ...STEP, trial: true }); // tappable (no toast over it)
      const t0 = Date.now();
      await page.getByTestId('promise-save').click(STEP);
      await page.waitForFunction((n) => window.gridsync.phone.records('promise').length > n, base.promise + j, STEP);
      saveMs.promise.push(Date.now() - t0);
    }
    driven.promises = 'ui';
  } catch (e) {
    await shot(page, 'bench-day-ui-failed-promises').catch(() => {});
    driven.promises = `api after ui failed: ${e.message.split('\n')[0]}`;
  }
}

async function day(browser, server, profile) {
  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, PERSON[profile.name]);
  await page.evaluate(() => navigator.serviceWorker.ready);
  await synced(page); // the grid's households come down
  if (HISTORY) {
    // Earlier months of this person's visits: ten a day, already on the server.
    await page.evaluate(async (n) => {
      const hh = window.gridsync.phone.records('household').map((r) => r.id);
      for (let i = 0; i < n; i++) {
        const at = Date.now() - (1 + Math.floor(i / 10)) * 86_400_000;
        window.gridsync.phone.create({ type: 'visit_log', household: hh[i % hh.length] || null, visited_at: at, kind: 'routine', notes: `${i} 走访独居老人，身体状况良好，子女每周探望一次。`, concerns: [] }, null, Date.now());
      }
      await window.gridsync.flush();
    }, HISTORY);
    await synced(page);
  }
  const t = await throttler(context, page);
  await t.apply(profile, { offline: true }); // slow all day, no signal until evening
  await page.waitForFunction(() => !navigator.onLine, null, STEP);

  for (const kind of Object.keys(base)) base[kind] = 0;
  for (const kind of Object.keys(base)) base[kind] = await count(page, kind);
  const driven = { visits: 'api', cases: 'api', promises: 'api' };
  const saveMs = { visit: [], case: [], promise: [] };
  const w0 = Date.now();
  if (mode === 'ui') await viaUi(page, driven, saveMs);
  for (const [kind, n, key] of [['visit_log', DAY.visits, 'visits'], ['case', DAY.cases, 'cases'], ['promise', DAY.promises, 'promises']]) {
    const have = await count(page, kind);
    if (mode === 'ui' && n > have && driven[key] === 'ui') driven[key] = `ui for ${have}, api for ${n - have}`;
    await viaApi(page, kind, n - have, have, saveMs);
  }
  await page.evaluate(() => window.gridsync.flush());
  const workMs = Date.now() - w0;
  const made = { visits: await count(page, 'visit_log'), cases: await count(page, 'case'), promises: await count(page, 'promise') };
  const waiting = await page.evaluate(() => ({
    changes: window.gridsync.phone.pendingChanges(),
    records: typeof window.gridsync.phone.pendingRecords === 'function' ? window.gridsync.phone.pendingRecords() : null,
  }));

  // Evening: signal again (the profile's network), and the app syncs by itself on `online`.
  const head0 = await headSeq(server.url);
  t.reset();
  const t0 = Date.now();
  await t.network(false);
  await page.waitForFunction(() => window.gridsync.phone.pendingChanges() === 0, null, { timeout: 300_000, polling: 50 });
  const syncMs = Date.now() - t0;
  const head1 = await headSeq(server.url);
  // pendingChanges() is 0 also when the server refused something: count the refusals.
  const refused = await page.evaluate(() => window.gridsync.phone.rejections());
  if (refused.length) console.error(`warning: the server refused ${refused.length} record(s): ${JSON.stringify(refused[0])}`);
  const api = t.requests().filter((r) => r.url.includes('/v1/'));
  const syncReqs = api.filter((r) => r.url.includes('/v1/sync'));
  const first = syncReqs.length ? Math.round(Math.min(...syncReqs.map((r) => r.wallMs)) - t0) : null;
  const out = {
    bench: 'day_of_work', profile: profile.name, cpu_rate: profile.cpu,
    ...(profile.net ? { net: profile.net } : { net: 'unthrottled' }), mode, driven_by: driven,
    households_in_grid: HOUSEHOLDS, earlier_visits_on_phone: HISTORY, made, waiting_before_sync: waiting,
    work_ms: workMs,
    save_ms_measures: mode === 'ui' ? 'tap on save until the saved screen shows (API fallback: create + IndexedDB write)' : 'create + IndexedDB write',
    save_ms_median: {
      visit: saveMs.visit.length ? stats(saveMs.visit).median : null,
      case: saveMs.case.length ? stats(saveMs.case).median : null,
      promise: saveMs.promise.length ? stats(saveMs.promise).median : null,
    },
    online_to_all_acknowledged_ms: syncMs, refused_by_server: refused.length,
    server_entries_added: head1 - head0,
    sync_requests: syncReqs.length, sync_traffic: traffic(syncReqs),
    api_traffic: traffic(api), first_sync_request_after_online_ms: first, load_avg: load(),
    ...common,
  };
  console.log(JSON.stringify(out));
  await context.close();
  return out;
}

const server = await startServer();
const browser = await launchBrowser();
try {
  // The grid's households, on the server before the day starts (made by another phone).
  {
    const { page, context } = await newPhone(browser);
    await signIn(page, server.url, 'li');
    await page.evaluate(async (n) => {
      const roads = ['槐荫路', '书院街', '东湖路', '城站路'];
      for (let i = 0; i < n; i++) {
        window.gridsync.phone.create({ type: 'household', head: `住户${i + 1}`, address: `${roads[i % 4]}${1 + (i % 60)}号${1 + (i % 6)}单元${101 + (i % 30)}室`, phone: '', id_number: '', tags: i % 10 ? [] : ['独居老人'], notes: '' }, null, Date.now());
      }
      await window.gridsync.flush();
    }, HOUSEHOLDS);
    await synced(page);
    await context.close();
  }
  const results = {};
  for (const name of wanted) results[name] = await day(browser, server, P[name]);
  // What the server holds: the community's supervisor pulls everything (unthrottled).
  const check = await newPhone(browser);
  await signIn(check.page, server.url, 'wang');
  await synced(check.page);
  const held = await check.page.evaluate(() => ({
    visits: window.gridsync.phone.records('visit_log').length,
    cases: window.gridsync.phone.records('case').length,
    promises: window.gridsync.phone.records('promise').length,
  }));
  await check.context.close();
  const madeAll = { visits: 0, cases: 0, promises: 0 };
  for (const r of Object.values(results)) {
    for (const k of Object.keys(madeAll)) madeAll[k] += r.made[k];
    madeAll.visits += r.earlier_visits_on_phone;
  }
  const serverHasAll = Object.keys(madeAll).every((k) => held[k] === madeAll[k]);
  if (!serverHasAll) console.error(`warning: the server holds ${JSON.stringify(held)}, the phones made ${JSON.stringify(madeAll)}`);
  const phone = results.phone;
  console.log(JSON.stringify({
    bench: 'day_of_work_summary', target_ms: 10_000,
    desktop_sync_ms: results.desktop?.online_to_all_acknowledged_ms ?? null,
    phone_sync_ms: phone?.online_to_all_acknowledged_ms ?? null,
    phone_target_met: phone ? phone.online_to_all_acknowledged_ms < 10_000 : null,
    server_holds: held, phones_made_with_earlier_visits: madeAll, server_has_everything: serverHasAll,
    ...common,
  }));
} finally {
  await browser.close();
  server.stop();
}
