// Measures how long the phone app takes to open with N local records (default
// 2,000 visit logs of ~200 characters each): from navigation start until the
// app has read IndexedDB, loaded every document into the replica and rendered.
// Prints one JSON line. Run: node tests/e2e/bench-open.mjs [records]
import { startServer, launchBrowser, newPhone, signIn, synced } from './harness.mjs';

const records = Number(process.argv[2] || 2000);
const server = await startServer();
const browser = await launchBrowser();
try {
  const { page, context } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  await page.evaluate(() => navigator.serviceWorker.ready);
  await synced(page);
  const seeded = await page.evaluate(async (n) => {
    const t0 = performance.now();
    const notes = '走访独居老人，身体状况良好，子女每周探望一次。反映小区东门路灯不亮、楼道堆放杂物，已记录并转物业处理。'.repeat(3);
    for (let i = 0; i < n; i++) {
      window.gridsync.phone.create({ type: 'visit_log', visited_at: Date.now(), kind: 'routine', notes: `${i} ${notes}`, concerns: ['路灯', '杂物'] }, null, Date.now());
    }
    await window.gridsync.flush();
    return { ms: performance.now() - t0, pending: window.gridsync.phone.pendingChanges() };
  }, records);
  await context.setOffline(true);
  const opens = [];
  for (let i = 0; i < 5; i++) {
    await page.reload();
    opens.push(await page.evaluate(async () => {
      await window.gridsync.ready;
      const at = (m) => Math.round(performance.getEntriesByName(m)[0]?.startTime ?? -1);
      return { total: performance.now(), wasm: at('gs-wasm-ready'), db: at('gs-db-read'), open: at('gs-replica-open'), rendered: at('gs-rendered') };
    }));
  }
  const count = await page.evaluate(() => window.gridsync.phone.records('visit_log').length);
  // The figure: navigation start to the first screen rendered with the replica open.
  opens.sort((a, b) => a.rendered - b.rendered);
  const m = opens[2];
  console.log(JSON.stringify({
    bench: 'app_open', records: count, create_all_ms: Math.round(seeded.ms),
    open_ms_median: m.rendered, open_ms_min: opens[0].rendered, open_ms_max: opens[4].rendered,
    reload_to_script_idle_ms_median: Math.round(m.total),
    median_breakdown_ms: { wasm_loaded: m.wasm, indexeddb_read: m.db - m.wasm, replica_open: m.open - m.db, first_render: m.rendered - m.open },
    offline: true,
  }));
} finally {
  await browser.close();
  server.stop();
}
