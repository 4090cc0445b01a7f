// Measures how long the phone app takes to open with N local records (default
// 2,000 visit logs of ~200 characters each, ten a day over 200 days, synced): from navigation start
// until the app has read IndexedDB, loaded every document into the replica
// and rendered (the app's own performance marks). Runs as this machine is
// (desktop) and as a mid-range phone on a weak network would feel it (phone:
// CPU throttled 4×, slow 3G, both over the DevTools protocol):
//   warm:        the app from the service worker's cache (offline, and online over slow 3G)
//   cold:        empty HTTP cache, no service worker, no Cache Storage, local data kept:
//                the app is downloaded over slow 3G
//   first_visit: a new phone (nothing stored) opening the sign-in screen over slow 3G
// Prints one JSON line per figure.
// Run: node tests/e2e/bench-open.mjs [records] [--latency 400] [--runs 5] [--cold-runs 3]
//      [--screen '#/households']  (the screen the phone reopens on; default the app's home)
import { startServer, launchBrowser, newPhone, signIn, synced } from './harness.mjs';
import { arg, profiles, throttler, traffic, measuredCommit, serverBuild, stats, load } from './bench-lib.mjs';

const records = Number(process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 2000);
const latency = Number(arg('latency', 400));
const runs = Number(arg('runs', 5));
const coldRuns = Number(arg('cold-runs', 3));
// The screen the phone was on when closed (opened again on reload); default: the app's home.
const screen = arg('screen', null);
const P = profiles(latency);
const LONG = { timeout: Number(process.env.BENCH_TIMEOUT_MS || 180_000) };
const common = { commit: measuredCommit(), server: serverBuild() };

/**
 * Added to every page before its scripts: resolves `window.__benchDrawn` with
 * the time of the second animation frame after the app's gs-rendered mark, once
 * the tasks already queued have run (a redirect to the home screen renders in
 * its own task): the first screen a person actually sees.
 */
function drawnProbe() {
  window.__benchDrawn = new Promise((resolve) => {
    new PerformanceObserver((list, obs) => {
      if (!list.getEntriesByName('gs-rendered').length) return;
      obs.disconnect();
      setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now()))), 0);
    }).observe({ entryTypes: ['mark'] });
  });
}

/** Waits for the app's boot to finish and reads its marks (ms from navigation start). */
async function marks(page) {
  await page.waitForFunction(() => !!(window.gridsync && window.gridsync.ready), null, { ...LONG, polling: 50 });
  return page.evaluate(async () => {
    await window.gridsync.ready;
    const at = (m) => Math.round(performance.getEntriesByName(m)[0]?.startTime ?? -1);
    const res = (end) => performance.getEntriesByType('resource').find((r) => r.name.endsWith(end));
    const got = (end) => Math.round(res(end)?.responseEnd ?? -1);
    const nav = performance.getEntriesByType('navigation')[0];
    return {
      drawn: Math.round(await window.__benchDrawn),
      screen: location.hash,
      // When each part had arrived (ms from navigation start): where the wait before gs-wasm-ready goes.
      arrived: { html: Math.round(nav?.responseEnd ?? -1), app_js: got('/app.js'), glue_js: got('/gridsync_client.js'), all_js: Math.round(Math.max(-1, ...performance.getEntriesByType('resource').filter((r) => r.name.endsWith('.js')).map((r) => r.responseEnd))),
        wasm_asked: Math.round(res('.wasm')?.startTime ?? -1), wasm: got('.wasm'), dom_ready: Math.round(nav?.domContentLoadedEventEnd ?? -1) },
      total: Math.round(performance.now()),
      wasm: at('gs-wasm-ready'),
      db: at('gs-db-read'),
      open: at('gs-replica-open'),
      rendered: at('gs-rendered'),
      // Whether the page itself came from the service worker (workerStart is 0 without one).
      controlled: (performance.getEntriesByType('navigation')[0]?.workerStart ?? 0) > 0,
      records: window.gridsync.phone ? window.gridsync.phone.records('visit_log').length : 0,
    };
  });
}

/**
 * Counts what the service worker itself downloads (its install fills the cache
 * with the app shell, revalidating what the page already loaded: a 304 costs
 * headers only). The page's throttling does not apply to the worker's own
 * fetches, so these bytes are reported, not timed.
 */
function watchWorker(context) {
  const seen = [];
  context.on('requestfinished', async (r) => {
    if (!r.serviceWorker()) return;
    const sz = await r.sizes().catch(() => null);
    seen.push({ url: r.url(), bytes: sz ? sz.responseBodySize + sz.responseHeadersSize : 0, body: sz ? sz.responseBodySize : 0 });
  });
  return {
    reset: () => seen.splice(0),
    /** Waits until the worker is active, then sums what it fetched. */
    async settle(page) {
      await page.evaluate(() => navigator.serviceWorker.ready.then(() => {}));
      await new Promise((r) => setTimeout(r, 300));
      return {
        requests: seen.length,
        bytes: seen.reduce((n, x) => n + x.bytes, 0),
        from_http_cache: seen.filter((x) => !x.body).length, // revalidated: headers only
        wasm_again: seen.some((x) => x.url.endsWith('.wasm') && x.body > 1000),
      };
    },
  };
}

function report(kind, profile, network, opens, extra = {}) {
  const ok = opens.filter((o) => o.rendered >= 0);
  const by = (f) => stats(ok.map(f));
  const open = by((o) => o.rendered);
  const drawn = by((o) => o.drawn);
  const m = [...ok].sort((a, b) => a.rendered - b.rendered)[Math.floor((ok.length - 1) / 2)] || {};
  console.log(JSON.stringify({
    bench: 'app_open', kind, profile: profile.name, cpu_rate: profile.cpu, network,
    ...(profile.net && network !== 'offline' ? { net: profile.net } : {}),
    records: m.records, runs: opens.length, failed_runs: opens.length - ok.length,
    open_ms_median: open.median, open_ms_min: open.min, open_ms_max: open.max,
    first_screen_drawn_ms_median: drawn.median, first_screen_drawn_ms_min: drawn.min, first_screen_drawn_ms_max: drawn.max,
    screen: m.screen,
    median_arrived_ms: m.arrived,
    median_breakdown_ms: m.rendered >= 0 ? {
      wasm_loaded: m.wasm, indexeddb_read: m.db - m.wasm, replica_open: m.open - m.db, first_render: m.rendered - m.open,
    } : null,
    from_service_worker: ok.map((o) => o.controlled),
    ...extra, load_avg: load(), ...common,
  }));
  return { open: open.median, drawn: drawn.median };
}

const server = await startServer();
const browser = await launchBrowser();
try {
  const { page, context } = await newPhone(browser);
  await context.addInitScript(drawnProbe);
  if (process.env.BENCH_DEBUG) page.on('console', (m) => console.error('console:', m.text()));
  await signIn(page, server.url, 'li');
  await page.evaluate(() => navigator.serviceWorker.ready);
  await synced(page);
  const seeded = await page.evaluate(async (n) => {
    const t0 = performance.now();
    const notes = '走访独居老人，身体状况良好，子女每周探望一次。反映小区东门路灯不亮、楼道堆放杂物，已记录并转物业处理。'.repeat(3);
    // Ten visits a day over the last 200 days (today's ten are on the 今日 screen).
    for (let i = 0; i < n; i++) {
      const at = Date.now() - Math.floor(i / 10) * 86_400_000 - (i % 10) * 1_800_000;
      window.gridsync.phone.create({ type: 'visit_log', visited_at: at, kind: 'routine', notes: `${i} ${notes}`, concerns: ['路灯', '杂物'] }, null, Date.now());
    }
    await window.gridsync.flush();
    return { ms: performance.now() - t0 };
  }, records);
  await synced(page);
  console.error(`seeded ${records} visit logs in ${Math.round(seeded.ms)} ms, synced; measuring`);

  if (screen) {
    await page.evaluate((s) => (location.hash = s), screen);
    await page.waitForFunction((s) => location.hash === s, screen);
  }
  const t = await throttler(context, page);
  const results = {};

  // Warm: the service worker answers from its cache.
  for (const [profile, network] of [[P.desktop, 'offline'], [P.phone, 'offline'], [P.phone, 'slow3g']]) {
    const offline = network === 'offline';
    await context.setOffline(offline); // the service worker's own fetches too
    await t.apply(profile, { offline }); // then the page's throttling (after Playwright's reset)
    const opens = [];
    for (let i = 0; i < runs; i++) {
      await page.reload({ waitUntil: 'commit', ...LONG });
      opens.push(await marks(page));
    }
    // Let the open's own sync finish before the next phase changes the network.
    if (!offline) await page.waitForFunction(() => !window.gridsync.syncState.syncing, null, LONG).catch(() => {});
    results[`warm_${profile.name}_${network}`] = report('warm', profile, network, opens);
  }

  // Cold: no service worker, no Cache Storage, no HTTP cache; IndexedDB (the 2,000 records) kept.
  {
    await context.setOffline(false);
    await t.apply(P.phone, { offline: false });
    const opens = [];
    const nets = [];
    const worker = watchWorker(context);
    const appUrl = page.url(); // the same screen the warm reloads open
    for (let i = 0; i < coldRuns; i++) {
      await page.goto('about:blank');
      await t.cdp.send('Storage.clearDataForOrigin', { origin: server.url, storageTypes: 'service_workers,cache_storage' });
      await t.cdp.send('Network.clearBrowserCache');
      await t.apply(P.phone, { offline: false });
      t.reset();
      worker.reset();
      await page.goto(appUrl, { waitUntil: 'commit', ...LONG });
      const o = await marks(page);
      opens.push(o);
      const sw = await worker.settle(page);
      if (process.env.BENCH_DEBUG) console.error(t.requests());
      const reqs = t.requests().filter((r) => r.end && r.end - r.start >= 0);
      const wasm = reqs.find((r) => r.url.endsWith('.wasm'));
      const app = traffic(reqs, (r) => !r.url.includes('/v1/'));
      nets.push({ ...app, wasm_bytes: wasm?.downBytes ?? null, wasm_encoding: wasm?.encoding ?? null, then_service_worker_install: sw, with_install_bytes: app.down_bytes + sw.bytes });
    }
    const n = nets[0] || {};
    results.cold = report('cold', P.phone, 'slow3g', opens, { app_download: n });
  }

  // First visit: a new phone with nothing stored opens the sign-in screen.
  {
    const opens = [];
    let net = null;
    for (let i = 0; i < coldRuns; i++) {
      const fresh = await newPhone(browser);
      await fresh.context.addInitScript(drawnProbe);
      const ft = await throttler(fresh.context, fresh.page);
      const worker = watchWorker(fresh.context);
      await ft.apply(P.phone, { offline: false });
      await fresh.page.goto(server.url, { waitUntil: 'commit', ...LONG });
      opens.push(await marks(fresh.page));
      const sw = await worker.settle(fresh.page);
      if (process.env.BENCH_DEBUG) console.error(ft.requests());
      const all = traffic(ft.requests().filter((r) => r.end));
      net = { ...all, then_service_worker_install: sw, with_install_bytes: all.down_bytes + sw.bytes };
      await fresh.context.close();
    }
    results.first_visit = report('first_visit', P.phone, 'slow3g', opens, { app_download: net });
  }

  const warm = Math.max(results.warm_phone_offline.drawn, results.warm_phone_slow3g.drawn);
  console.log(JSON.stringify({
    bench: 'app_open_summary', target_ms: 1000,
    figure: 'first screen drawn, median (ms from navigation start)',
    desktop_warm_ms: results.warm_desktop_offline.drawn, phone_warm_offline_ms: results.warm_phone_offline.drawn,
    phone_warm_slow3g_ms: results.warm_phone_slow3g.drawn, phone_cold_slow3g_ms: results.cold.drawn, phone_first_visit_slow3g_ms: results.first_visit.drawn,
    phone_warm_target_met: warm < 1000, ...common,
  }));
} finally {
  await browser.close();
  server.stop();
}
