// Photos as evidence (issue 12), in Chromium at 360×800 against the real
// server: a large camera JPEG with EXIF taken offline through the file input
// is shrunk (long edge ≤ 1,600 px, orientation applied, no EXIF left), kept
// with the form's draft across a reload, attached once on save, counted in
// 待同步, uploaded chunk by chunk (resuming after a cut) once the records have
// synced, and seen by the supervisor on another phone (thumbnail, full view;
// 联网后显示 while offline). Also: at most 9, the position only when allowed,
// a version-1 IndexedDB upgraded without losing a record, a busy server's
// Retry-After and a 409 photo_not_referenced honoured by the uploads.
// Reviewed screenshots: docs/screenshots/photos-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, launchPersistentPhone, newPhone, signIn, synced, root } from './harness.mjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

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

const docShot = (page, name) => page.screenshot({ path: join(root, 'docs', 'screenshots', `photos-${name}.png`) });

/** Marks written into the EXIF segment: none may survive the re-encoding. */
const SECRET = 'GPS 30.9245N 113.9160E HOME';

/**
 * A camera-like JPEG made in the page: `w`×`h` pixels (a scene of gradients,
 * shapes and sensor noise, so it compresses like a photo), with an APP1 Exif
 * segment after SOI holding Orientation = 6 (rotate 90° clockwise to view)
 * and an ImageDescription naming a home position. Returns the bytes.
 */
async function cameraJpeg(page, w = 4000, h = 3000, seed0 = 12345, noise = 25) {
  // The same arguments make the same bytes: each distinct photo is drawn once per run (a 12-MP one takes seconds).
  const key = `${w}x${h}:${seed0}:${noise}`;
  if (!cameraJpegs.has(key)) cameraJpegs.set(key, await drawCameraJpeg(page, w, h, seed0, noise));
  return cameraJpegs.get(key);
}

/** The photos `cameraJpeg` made in this run, by their arguments (the bytes; nothing writes to them). */
const cameraJpegs = new Map();

async function drawCameraJpeg(page, w, h, seed0, noise) {
  const b64 = await page.evaluate(
    async ({ w, h, secret, seed0, noise }) => {
      const c = new OffscreenCanvas(w, h);
      const g = c.getContext('2d');
      const sky = g.createLinearGradient(0, 0, 0, h);
      sky.addColorStop(0, '#8fb8de');
      sky.addColorStop(0.6, '#d9c8a8');
      sky.addColorStop(1, '#5b4a3a');
      g.fillStyle = sky;
      g.fillRect(0, 0, w, h);
      for (let i = 0; i < 60; i++) {
        g.fillStyle = `hsl(${(i * 47) % 360} 40% ${30 + (i % 5) * 10}%)`;
        g.fillRect((i * 331) % w, (i * 197) % h, 200 + (i % 7) * 90, 150 + (i % 4) * 120);
      }
      g.fillStyle = '#222';
      g.font = `${Math.round(h / 8)}px sans-serif`;
      g.fillText(`安全出口被堵 ${seed0}`, w * 0.1, h * 0.5);
      // Sensor noise, as a phone camera's photo has.
      const img = g.getImageData(0, 0, w, h);
      let seed = seed0;
      for (let i = 0; i < img.data.length; i += 4) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const n = (seed % noise) - (noise >> 1);
        img.data[i] += n;
        img.data[i + 1] += n;
        img.data[i + 2] += n;
      }
      g.putImageData(img, 0, 0);
      const jpeg = new Uint8Array(await (await c.convertToBlob({ type: 'image/jpeg', quality: 0.92 })).arrayBuffer());
      // TIFF (big-endian): IFD0 with Orientation (0x0112, SHORT) = 6 and ImageDescription (0x010E, ASCII).
      const desc = new TextEncoder().encode(`${secret}\0`);
      const tiff = new Uint8Array(8 + 2 + 2 * 12 + 4 + desc.length);
      const v = new DataView(tiff.buffer);
      tiff.set([0x4d, 0x4d, 0x00, 0x2a]);
      v.setUint32(4, 8);
      v.setUint16(8, 2);
      v.setUint16(10, 0x010e); v.setUint16(12, 2); v.setUint32(14, desc.length); v.setUint32(18, 8 + 2 + 24 + 4);
      v.setUint16(22, 0x0112); v.setUint16(24, 3); v.setUint32(26, 1); v.setUint16(30, 6);
      v.setUint32(34, 0);
      tiff.set(desc, 38);
      const payload = new Uint8Array(6 + tiff.length);
      payload.set([0x45, 0x78, 0x69, 0x66, 0, 0]); // "Exif\0\0"
      payload.set(tiff, 6);
      const seg = new Uint8Array(4 + payload.length);
      seg.set([0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]);
      seg.set(payload, 4);
      // SOI, then our APP1, then what the encoder wrote after its SOI (its JFIF APP0 and the image).
      const out = new Uint8Array(jpeg.length + seg.length);
      out.set(jpeg.subarray(0, 2));
      out.set(seg, 2);
      out.set(jpeg.subarray(2), 2 + seg.length);
      let s = '';
      for (let i = 0; i < out.length; i += 0x8000) s += String.fromCharCode(...out.subarray(i, i + 0x8000));
      return btoa(s);
    },
    { w, h, secret: SECRET, seed0, noise },
  );
  return Buffer.from(b64, 'base64');
}

/** What IndexedDB holds for each photo: size, pending, uploaded, pixel size, and whether EXIF or the secret is in the bytes. */
async function storedPhotos(page) {
  return page.evaluate(async (secret) => {
    const db = await new Promise((ok, fail) => {
      const r = indexedDB.open('gridsync');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    const all = await new Promise((ok, fail) => {
      const r = db.transaction('photos').objectStore('photos').getAll();
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    db.close();
    const out = [];
    for (const p of all) {
      const bytes = new Uint8Array(await p.bytes.arrayBuffer());
      // Walk the JPEG's marker segments up to the image data: any APP1 "Exif"?
      let exif = false;
      let i = 2;
      while (i + 4 < bytes.length && bytes[i] === 0xff && bytes[i + 1] !== 0xda) {
        const len = (bytes[i + 2] << 8) | bytes[i + 3];
        if (bytes[i + 1] === 0xe1 && String.fromCharCode(...bytes.subarray(i + 4, i + 8)) === 'Exif') exif = true;
        i += 2 + len;
      }
      const text = new TextDecoder('latin1').decode(bytes);
      const bmp = await createImageBitmap(p.bytes);
      out.push({
        sha256: p.sha256, size: p.size, real: bytes.length, pending: p.pending || 0, uploaded: !!p.uploaded, record: p.record,
        soi: bytes[0] === 0xff && bytes[1] === 0xd8, exif, exifText: text.includes('Exif\0'), secret: text.includes(secret),
        width: bmp.width, height: bmp.height,
      });
      bmp.close();
    }
    return out;
  }, SECRET);
}

const pendingOf = async (page) => {
  const el = page.getByTestId('status-pending');
  return { records: Number(await el.getAttribute('data-count')), photos: Number(await el.getAttribute('data-photos')) };
};

async function installed(page) {
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => {}));
  await page.waitForFunction(async () => {
    const keys = await caches.keys();
    const shell = keys.find((k) => k.startsWith('gridsync-shell-'));
    return !!shell && (await (await caches.open(shell)).match('photos.js')) && !!navigator.serviceWorker.controller;
  }, null, { polling: 100, timeout: 30_000 });
}

test('a 12-MP camera JPEG is shrunk in the page: long edge 1600, orientation applied, ≤ 300 KB, no EXIF', { timeout: 60_000 }, async () => {
  const { context, page } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  const jpeg = await cameraJpeg(page);
  const run = (times, photo = jpeg) => page.evaluate(async ({ b64, times }) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const { processPhoto } = await import('/photos.js');
    const file = new File([bytes], 'IMG_20261130_091500.jpg', { type: 'image/jpeg', lastModified: Date.UTC(2026, 10, 30, 1, 15) });
    const runs = [];
    let p;
    for (let i = 0; i < times; i++) {
      p = await processPhoto(file);
      runs.push(p.ms);
    }
    const out = new Uint8Array(await p.blob.arrayBuffer());
    const text = new TextDecoder('latin1').decode(out);
    return { inBytes: bytes.length, outBytes: p.size, width: p.width, height: p.height, quality: p.quality, takenAt: p.takenAt, runs, exif: text.includes('Exif'), sha: p.sha256 };
  }, { b64: photo.toString('base64'), times });
  const figures = await run(3);
  // A mid-range phone: the page's CPU 4× slower (as the benchmarks' phone profile).
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  const slow = await run(1);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
  console.log(`12-MP JPEG (4000×3000, ${figures.inBytes} B, EXIF orientation 6): → ${figures.width}×${figures.height}, ${figures.outBytes} B at quality ${figures.quality}; ${figures.runs.join(' / ')} ms; CPU 4× slower: ${slow.runs[0]} ms`);
  assert.equal(figures.width, 1200, 'turned upright (orientation 6): 3000 wide becomes 1200');
  assert.equal(figures.height, 1600, 'the long edge is 1600');
  assert.ok(figures.outBytes <= 300_000, `≤ 300 KB: ${figures.outBytes}`);
  assert.ok(!figures.exif, 'no EXIF in the re-encoded bytes');
  assert.equal(figures.takenAt, Date.UTC(2026, 10, 30, 1, 15), 'the time taken is the file time');
  assert.match(figures.sha, /^[0-9a-f]{64}$/);
  // A grainy night shot: the quality steps down until it fits.
  const grainy = await run(1, await cameraJpeg(page, 4000, 3000, 99, 120));
  console.log(`grainy 12-MP JPEG (${grainy.inBytes} B): → ${grainy.outBytes} B at quality ${grainy.quality}, ${grainy.runs[0]} ms`);
  assert.ok(grainy.quality < 0.85, `stepped down: ${grainy.quality}`);
  assert.ok(grainy.outBytes <= 1_048_576, `within the hard limit: ${grainy.outBytes}`);
  await context.close();
});

/** The phone's token, to ask the server as the phone does. */
const tokenOf = (page) => page.evaluate(() => window.gridsync.phone.identity().token);

/** Waits until no photo waits for upload (the status bar's figure). */
async function photosUploaded(page) {
  await page.evaluate(() => window.gridsync.syncNow());
  await page.waitForFunction(() => document.querySelector('[data-testid=status-pending]')?.dataset.photos === '0', null, { timeout: 30_000 });
}

const shown = (page, strip) => page.locator(`[data-testid=${strip}] [data-testid=photo-tile][data-state=shown]`);

test('offline: photos on a visit, its case and a follow-up survive a reload with the draft, count in 待同步, upload once online, and the supervisor sees them', { timeout: 120_000 }, async () => {
  const { context, page } = await newPhone(browser);
  await signIn(page, server.url, 'li');
  await synced(page);
  await installed(page);
  const camera = await cameraJpeg(page);
  const gallery = await cameraJpeg(page, 2400, 1800);

  // In the basement: no signal.
  await context.setOffline(true);
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-kind-screening').click();
  await page.getByTestId('visit-notes').fill('排查发现地下室安全出口被杂物堵塞');
  // A file that is not an image is refused, with a message.
  await page.getByTestId('visit-photos-gallery').setInputFiles({ name: '说明.txt', mimeType: 'text/plain', buffer: Buffer.from('不是照片') });
  await page.getByTestId('toast').filter({ hasText: '不是图片' }).waitFor();
  await page.getByTestId('visit-photos-camera').setInputFiles({ name: 'IMG_20261130_091500.jpg', mimeType: 'image/jpeg', buffer: camera });
  await shown(page, 'visit-photos-tiles').waitFor({ timeout: 20_000 });
  await docShot(page, 'visit-form');
  let stored = await storedPhotos(page);
  assert.equal(stored.length, 1, 'the photo is kept in IndexedDB');
  const [visitPhoto] = stored;
  assert.ok(visitPhoto.soi, 'a JPEG');
  assert.ok(!visitPhoto.exif && !visitPhoto.exifText, 'no EXIF segment left');
  assert.ok(!visitPhoto.secret, 'nothing of the EXIF content left');
  assert.deepEqual([visitPhoto.width, visitPhoto.height], [1200, 1600], 'upright, long edge 1600');
  assert.ok(visitPhoto.size <= 300_000 && visitPhoto.size === visitPhoto.real, `≤ 300 KB: ${visitPhoto.size}`);
  assert.equal(visitPhoto.pending, 0, 'not waiting for upload before the visit is saved');
  assert.equal((await pendingOf(page)).photos, 0);

  // The phone reloads (the app killed in the background): the draft and its photo are still there.
  await page.reload();
  await page.evaluate(() => window.gridsync.ready);
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('draft-continue').first().click();
  await page.getByTestId('draft-restored').waitFor();
  assert.equal(await page.getByTestId('visit-notes').inputValue(), '排查发现地下室安全出口被杂物堵塞');
  await shown(page, 'visit-photos-tiles').waitFor();
  assert.equal(await page.locator('[data-testid=visit-photos-tiles] [data-testid=photo-tile]').count(), 1);
  // A double tap on 保存: one visit, the photo attached once.
  await page.evaluate(() => {
    const form = document.querySelector('[data-testid=visit-form]');
    form.requestSubmit();
    form.requestSubmit();
  });
  await page.getByTestId('visit-saved').waitFor();
  await shown(page, 'visit-photos').waitFor();
  const visits = await page.evaluate(() => window.gridsync.phone.records('visit_log'));
  assert.equal(visits.length, 1, 'one visit');
  assert.deepEqual(visits[0].record.photos.map((p) => p.sha256), [visitPhoto.sha256], 'the photo attached once');
  assert.equal(visits[0].record.photos[0].taken_at > 0, true, 'with the time taken');
  assert.equal(visits[0].record.photos[0].location, null, 'no position: 照片记录位置 is off by default');
  assert.deepEqual(await pendingOf(page), { records: 1, photos: 1 }, '待同步: the visit and its photo');
  await docShot(page, 'visit-saved');

  // The case it leads to, with a photo from the gallery.
  await page.getByTestId('visit-report-case').click();
  await page.getByTestId('case-kind-hazard').click();
  await page.getByTestId('case-title').fill('地下室安全出口被堵');
  await page.getByTestId('case-photos-gallery').setInputFiles({ name: 'Screenshot_2026.jpg', mimeType: 'image/jpeg', buffer: gallery });
  await shown(page, 'case-photos-tiles').waitFor({ timeout: 20_000 });
  await page.getByTestId('case-save').click();
  await page.getByTestId('case-detail-title').waitFor();
  await shown(page, 'case-photos').waitFor();
  // And a follow-up with a photo of the cleared exit.
  await page.getByTestId('followup-note').fill('已通知物业清理');
  await page.getByTestId('followup-photos-camera').setInputFiles({ name: 'IMG_20261130_101500.jpg', mimeType: 'image/jpeg', buffer: await cameraJpeg(page, 1600, 1200) });
  await shown(page, 'followup-photos-tiles').waitFor({ timeout: 20_000 });
  await page.getByTestId('followup-save').click();
  await page.getByTestId('followup-item').filter({ hasText: '已通知物业清理' }).locator('[data-testid=followup-photos] [data-testid=photo-tile][data-state=shown]').waitFor();
  assert.deepEqual(await pendingOf(page), { records: 2, photos: 3 }, '待同步: the visit, the case and three photos');
  assert.equal(await page.getByTestId('status-pending').innerText(), '2 条记录待同步');
  assert.equal(await page.getByTestId('status-photos').innerText(), '另有 3 张照片，联网后自动同步');
  await docShot(page, 'case-offline');
  stored = await storedPhotos(page);
  assert.equal(stored.filter((p) => p.pending).length, 3);

  // Signal again: the records sync, then the photos go up.
  await context.setOffline(false);
  await synced(page);
  await photosUploaded(page);
  stored = await storedPhotos(page);
  assert.ok(stored.every((p) => p.uploaded && !p.pending), 'every photo marked uploaded');
  const token = await tokenOf(page);
  for (const p of stored) {
    const r = await fetch(`${server.url}/v1/photos/${p.sha256}`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, `the server has ${p.sha256}`);
    const body = Buffer.from(await r.arrayBuffer());
    assert.equal(body.length, p.size);
    assert.equal((await import('node:crypto')).createHash('sha256').update(body).digest('hex'), p.sha256, 'the same bytes');
  }
  await context.close();

  // The supervisor, on another phone: first in a lift (offline), then with signal.
  const sup = await newPhone(browser);
  await signIn(sup.page, server.url, 'wang');
  await synced(sup.page);
  // The app installed before the lift: a service worker whose install the
  // lost signal cut short never becomes ready, and the offline reload below needs it.
  await installed(sup.page);
  await sup.context.setOffline(true);
  await sup.page.getByTestId('nav-visits').click();
  await sup.page.getByTestId('visit-item').first().click();
  const tile = sup.page.locator('[data-testid=visit-photos] [data-testid=photo-tile]');
  await tile.and(sup.page.locator('[data-state=offline]')).waitFor();
  assert.equal(await tile.innerText(), '联网后显示');
  await docShot(sup.page, 'supervisor-offline');
  await sup.context.setOffline(false);
  await tile.click(); // tapped again with signal: downloaded now
  await shown(sup.page, 'visit-photos').waitFor();

  await sup.page.getByTestId('nav-cases').click();
  await sup.page.getByTestId('case-item').filter({ hasText: '地下室安全出口被堵' }).click();
  await shown(sup.page, 'case-photos').waitFor();
  await sup.page.locator('[data-testid=followup-photos] [data-testid=photo-tile][data-state=shown]').waitFor();
  await docShot(sup.page, 'supervisor-case');
  const thumb = await shown(sup.page, 'case-photos').locator('img').evaluate((img) => img.decode().then(() => Math.max(img.naturalWidth, img.naturalHeight)));
  assert.equal(thumb, 320, 'tiles show a 320 px thumbnail, not the whole photo');
  await shown(sup.page, 'case-photos').click();
  await sup.page.getByTestId('photo-full').waitFor();
  const full = await sup.page.getByTestId('photo-full-img').evaluate((img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
  assert.deepEqual(full, [1200, 1600], 'the full view shows the whole photo (the gallery photo had EXIF orientation 6 too: upright)');
  await docShot(sup.page, 'supervisor-full-view');
  await sup.page.getByTestId('photo-full').click();
  await sup.page.getByTestId('photo-full').waitFor({ state: 'detached' }); // a tap closes it
  assert.match(await sup.page.evaluate(() => location.hash), /^#\/case\//, 'still on the case');
  // The phone's back button closes the full view too, and stays on the case.
  await shown(sup.page, 'case-photos').click();
  await sup.page.getByTestId('photo-full').waitFor();
  await sup.page.goBack();
  await sup.page.getByTestId('photo-full').waitFor({ state: 'detached' });
  await sup.page.getByTestId('case-detail-title').waitFor();
  assert.match(await sup.page.evaluate(() => location.hash), /^#\/case\//, 'back closed the photo, not the case');

  // Shown once, kept: offline again, the photos are still there. Never in the service worker's cache.
  const kept = await storedPhotos(sup.page);
  assert.equal(kept.length, 3, 'the three photos shown are kept');
  assert.ok(kept.every((p) => p.uploaded && !p.pending), 'others’ photos never wait for upload here');
  assert.deepEqual(await pendingOf(sup.page), { records: 0, photos: 0 });
  const cached = await sup.page.evaluate(async () => {
    const urls = [];
    for (const k of await caches.keys()) for (const r of await (await caches.open(k)).keys()) urls.push(r.url);
    return urls.filter((u) => u.includes('/v1/'));
  });
  assert.deepEqual(cached, [], 'no /v1/ answer in the app cache');
  await installed(sup.page);
  await sup.context.setOffline(true);
  await sup.page.reload();
  await sup.page.evaluate(() => window.gridsync.ready);
  await shown(sup.page, 'case-photos').waitFor();
  await sup.context.close();
});

test('a photo cut off mid-upload resumes where the server stopped, and is not sent again once stored', { timeout: 90_000 }, async () => {
  // Without the service worker, so that the test sees (and cuts) the page's requests.
  const { context, page } = await newPhone(browser, { serviceWorkers: 'block' });
  await signIn(page, server.url, 'zhou');
  await synced(page);
  const jpeg = await cameraJpeg(page, 4000, 3000, 777); // a photo the server does not have (another's same photo would not be sent at all)
  await context.setOffline(true);
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-notes').fill('续传测试');
  await page.getByTestId('visit-photos-camera').setInputFiles({ name: 'IMG_1.jpg', mimeType: 'image/jpeg', buffer: jpeg });
  await shown(page, 'visit-photos-tiles').waitFor({ timeout: 20_000 });
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  const [photo] = await storedPhotos(page);
  const chunk = 65_536;
  assert.ok(photo.size > 3 * chunk, `the photo needs more than three ${chunk}-byte requests: ${photo.size}`);
  await page.evaluate((n) => import('/sync.js').then((m) => (m.photoState.maxChunk = n)), chunk);

  // The link drops at the third chunk (and stays bad for it until let go).
  const puts = []; // offsets of the chunks that reached the server
  let cuts = 0;
  let bad = true;
  await page.route('**/v1/photos/**', async (route) => {
    const req = route.request();
    if (req.method() === 'PUT') {
      const at = Number(req.headers()['x-upload-offset']);
      if (bad && at >= 2 * chunk) {
        cuts++;
        return route.abort('connectionreset');
      }
      puts.push(at);
    }
    return route.continue();
  });
  await context.setOffline(false);
  await synced(page);
  for (let i = 0; i < 200 && !cuts; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cuts >= 1, `the third chunk was cut (chunks through: ${puts})`);
  await page.waitForFunction(() => import('/sync.js').then((m) => !m.photoState.uploading));
  assert.equal((await pendingOf(page)).photos, 1, 'the photo still waits');
  const token = await tokenOf(page);
  const held = await (await fetch(`${server.url}/v1/photos/${photo.sha256}/upload`, { headers: { Authorization: `Bearer ${token}` } })).json();
  assert.deepEqual(held, { stored: false, received: 2 * chunk }, 'the server holds the first two chunks');

  // The link is good again; the next sync: the upload asks where to go on, and sends only the rest.
  bad = false;
  await photosUploaded(page);
  const expected = [];
  for (let at = 0; at < photo.size; at += chunk) expected.push(at);
  assert.deepEqual(puts, expected, 'every chunk reached the server once: resumed at the cut one, nothing before it sent again');
  const done = await (await fetch(`${server.url}/v1/photos/${photo.sha256}/upload`, { headers: { Authorization: `Bearer ${token}` } })).json();
  assert.deepEqual(done, { stored: true, received: photo.size });

  // Stored: a later sync sends nothing more.
  const before = puts.length;
  await page.evaluate(() => window.gridsync.syncNow());
  await page.evaluate(() => import('/sync.js').then((m) => m.uploadPhotos()));
  assert.equal(puts.length, before, 'no photo bytes sent again');
  await context.close();
});

test('a photo taken offline survives closing and restarting the browser: still 待同步, then uploaded with the same bytes', { timeout: 90_000 }, async () => {
  const profile = mkdtempSync(join(tmpdir(), 'gridsync-photo-profile-'));
  let phone = await launchPersistentPhone(profile);
  await signIn(phone.page, server.url, 'li');
  await synced(phone.page);
  await installed(phone.page);
  const camera = await cameraJpeg(phone.page, 1600, 1200, 777);
  await phone.context.setOffline(true);
  await phone.page.getByTestId('nav-visits').click();
  await phone.page.getByTestId('visit-new').click();
  await phone.page.getByTestId('visit-kind-routine').click();
  await phone.page.getByTestId('visit-notes').fill('重启浏览器前拍的照片');
  await phone.page.getByTestId('visit-photos-camera').setInputFiles({ name: 'IMG_restart.jpg', mimeType: 'image/jpeg', buffer: camera });
  await shown(phone.page, 'visit-photos-tiles').waitFor({ timeout: 20_000 });
  await phone.page.getByTestId('visit-save').click();
  await phone.page.getByTestId('visit-saved').waitFor();
  const [before] = await storedPhotos(phone.page);
  assert.deepEqual(await pendingOf(phone.page), { records: 1, photos: 1 });
  await phone.context.close();

  // The browser process is gone; started again on the same profile, still offline.
  phone = await launchPersistentPhone(profile);
  await phone.context.setOffline(true);
  await phone.page.goto(server.url);
  await phone.page.evaluate(() => window.gridsync.ready);
  assert.deepEqual(await pendingOf(phone.page), { records: 1, photos: 1 }, 'the visit and its photo still wait');
  const [after] = await storedPhotos(phone.page);
  assert.equal(after.sha256, before.sha256, 'the same photo, kept across the restart');
  assert.equal(after.real, before.size);
  await phone.page.getByTestId('nav-visits').click();
  await phone.page.getByTestId('visit-item').filter({ hasText: '重启浏览器前拍的照片' }).click();
  await shown(phone.page, 'visit-photos').waitFor({ timeout: 20_000 });

  await phone.context.setOffline(false);
  await synced(phone.page);
  await photosUploaded(phone.page);
  const token = await tokenOf(phone.page);
  const r = await fetch(`${server.url}/v1/photos/${before.sha256}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal((await import('node:crypto')).createHash('sha256').update(body).digest('hex'), before.sha256);
  await phone.context.close();
});

test('at most 9 photos a record: the tenth is refused with a message; a photo the replica refuses to attach is not left waiting for upload', { timeout: 60_000 }, async () => {
  const { context, page } = await newPhone(browser);
  await signIn(page, server.url, 'wu');
  const files = [];
  for (let i = 0; i < 10; i++) files.push({ name: `IMG_${i}.jpg`, mimeType: 'image/jpeg', buffer: await cameraJpeg(page, 400, 300, i + 1) });
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('case-new').click();
  await page.getByTestId('case-photos-gallery').setInputFiles(files);
  await page.getByTestId('toast').filter({ hasText: '最多 9 张' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=case-photos-tiles] [data-testid=photo-tile][data-state=shown]').length === 9, null, { timeout: 30_000 });
  assert.match(await page.getByTestId('case-photos-count').innerText(), /已有 9 张/);
  await page.getByTestId('case-photos-count').scrollIntoViewIfNeeded();
  await docShot(page, 'nine');

  // A photo the replica refuses to attach (here: no such record) is not left waiting for an upload.
  const refused = await page.evaluate(async () => {
    const photos = await import('/photos.js');
    const db = await import('/db.js');
    const sha = document.querySelector('[data-testid=case-photos-tiles] [data-sha]').dataset.sha;
    const kept = await db.getPhoto(sha);
    let error = null;
    try {
      await photos.attachPhotos('0190f5c2-0000-7000-8000-000000000000', [{ sha256: sha, size: kept.size, mime: 'image/jpeg', takenAt: 1 }]);
    } catch (e) {
      error = String(e.message || e);
    }
    const after = await db.getPhoto(sha);
    return { error, pending: after.pending || 0, record: after.record, waiting: db.pendingPhotos() };
  });
  assert.ok(refused.error, 'the replica refused');
  assert.deepEqual([refused.pending, refused.record, refused.waiting], [0, null, 0], 'the photo is back as it was: not waiting for upload');
  await context.close();
});

test('with 照片记录位置 switched on in 我的, a photo keeps where it was taken as a field, never in its bytes', { timeout: 60_000 }, async () => {
  const { context, page } = await newPhone(browser, { permissions: ['geolocation'], geolocation: { latitude: 30.9245, longitude: 113.916, accuracy: 12 } });
  await signIn(page, server.url, 'wu');
  await page.getByTestId('nav-me').click();
  const toggle = page.getByTestId('me-photo-location').locator('input');
  assert.equal(await toggle.isChecked(), false, 'off by default');
  await toggle.check();
  await page.getByTestId('me-photo-location').scrollIntoViewIfNeeded();
  await docShot(page, 'me-location-setting');
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-notes').fill('位置测试');
  await page.getByTestId('visit-photos-camera').setInputFiles({ name: 'IMG_2.jpg', mimeType: 'image/jpeg', buffer: await cameraJpeg(page, 800, 600, 4242) });
  await shown(page, 'visit-photos-tiles').waitFor({ timeout: 20_000 });
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  const visit = (await page.evaluate(() => window.gridsync.phone.records('visit_log'))).find((l) => l.record.fields.notes === '位置测试');
  const [ref] = visit.record.photos;
  assert.equal(ref.location.lat, 30.9245);
  assert.equal(ref.location.lon, 113.916);
  const [kept] = (await storedPhotos(page)).filter((p) => p.sha256 === ref.sha256);
  assert.ok(!kept.exif, 'the bytes carry no EXIF (the position is a field of the record)');
  await context.close();
});

test('a phone from before photos (IndexedDB version 1, records only) keeps every record and its sign-in after the upgrade', { timeout: 60_000 }, async () => {
  const { context, page } = await newPhone(browser, { serviceWorkers: 'block' });
  await signIn(page, server.url, 'li');
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-notes').fill('升级前的走访');
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  // What the phone holds, then the same database as the app before photos made it.
  const count = () => page.evaluate(() => ['household', 'visit_log', 'case', 'promise'].reduce((n, k) => n + window.gridsync.phone.records(k).length, 0));
  const before = await count();
  assert.ok(before > 0, 'records to keep');
  await page.goto(`${server.url}/healthz`); // same origin, no app holding the database open
  const entries = await page.evaluate(async () => {
    const open = (v, up) => new Promise((ok, fail) => {
      const r = v ? indexedDB.open('gridsync', v) : indexedDB.open('gridsync');
      if (up) r.onupgradeneeded = () => up(r.result);
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    const all = (store, what) => new Promise((ok) => {
      const r = store[what]();
      r.onsuccess = () => ok(r.result);
    });
    let db = await open();
    const store = db.transaction('kv').objectStore('kv');
    const [keys, values] = [await all(store, 'getAllKeys'), await all(db.transaction('kv').objectStore('kv'), 'getAll')];
    db.close();
    await new Promise((ok) => (indexedDB.deleteDatabase('gridsync').onsuccess = ok));
    db = await open(1, (d) => d.createObjectStore('kv'));
    const tx = db.transaction('kv', 'readwrite');
    keys.forEach((k, i) => tx.objectStore('kv').put(values[i], k));
    await new Promise((ok) => (tx.oncomplete = ok));
    const version = db.version;
    const stores = [...db.objectStoreNames];
    db.close();
    return { n: keys.length, version, stores };
  });
  assert.deepEqual([entries.version, entries.stores], [1, ['kv']], 'a version-1 database, records only');
  await page.goto(server.url);
  await page.evaluate(() => window.gridsync.ready);
  await page.getByTestId('nav-households').waitFor();
  assert.equal(await count(), before, 'every record still there');
  const after = await page.evaluate(() => new Promise((ok) => {
    const r = indexedDB.open('gridsync');
    r.onsuccess = () => {
      ok({ version: r.result.version, stores: [...r.result.objectStoreNames].sort() });
      r.result.close();
    };
  }));
  assert.deepEqual(after, { version: 2, stores: ['kv', 'photos'] }, 'upgraded: the photos store beside the records');
  await context.close();
});

test('a busy server (503 with Retry-After) holds the photo uploads for the time it asks; they then go on by themselves', { timeout: 60_000 }, async () => {
  const { context, page } = await newPhone(browser, { serviceWorkers: 'block' });
  await signIn(page, server.url, 'wu');
  await synced(page);
  const asked = []; // when the phone asked where an upload stands
  let busy = true;
  await page.route('**/v1/photos/*/upload', async (route) => {
    asked.push(Date.now());
    if (busy) {
      busy = false;
      return route.fulfill({ status: 503, headers: { 'Retry-After': '2', 'Content-Type': 'application/json' }, body: JSON.stringify({ error: 'busy', message: '服务器繁忙', retry_after_s: 2 }) });
    }
    return route.continue();
  });
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-notes').fill('服务器繁忙时的照片');
  await page.getByTestId('visit-photos-camera').setInputFiles({ name: 'IMG_3.jpg', mimeType: 'image/jpeg', buffer: await cameraJpeg(page, 800, 600, 5151) });
  await shown(page, 'visit-photos-tiles').waitFor({ timeout: 20_000 });
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  await synced(page); // the record goes; its photo meets the busy server
  await page.waitForFunction(() => document.querySelector('[data-testid=status-pending]')?.dataset.photos === '0', null, { timeout: 20_000 });
  assert.ok(asked.length >= 2, `asked again after the wait: ${asked.length}`);
  assert.ok(asked[1] - asked[0] >= 2000, `waited what the server asked: ${asked[1] - asked[0]} ms`);
  await context.close();
});

test('a photo the server does not yet know a record for (409 photo_not_referenced) waits for the next sync, then goes; abandoned and over-budget photos are cleared', { timeout: 60_000 }, async () => {
  const { context, page } = await newPhone(browser, { serviceWorkers: 'block' });
  await signIn(page, server.url, 'zhou');
  await synced(page);
  let refuse = true;
  let refused = 0;
  await page.route('**/v1/photos/*', async (route) => {
    if (route.request().method() === 'PUT' && refuse) {
      refused++;
      return route.fulfill({ status: 409, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ error: 'photo_not_referenced', message: '请先同步引用此照片的记录' }) });
    }
    return route.continue();
  });
  await page.getByTestId('nav-visits').click();
  await page.getByTestId('visit-new').click();
  await page.getByTestId('visit-notes').fill('记录未到服务器时的照片');
  await page.getByTestId('visit-photos-camera').setInputFiles({ name: 'IMG_4.jpg', mimeType: 'image/jpeg', buffer: await cameraJpeg(page, 800, 600, 6262) });
  await shown(page, 'visit-photos-tiles').waitFor({ timeout: 20_000 });
  await page.getByTestId('visit-save').click();
  await page.getByTestId('visit-saved').waitFor();
  await synced(page);
  for (let i = 0; i < 200 && !refused; i++) await new Promise((r) => setTimeout(r, 50));
  await page.waitForFunction(() => import('/sync.js').then((m) => !m.photoState.uploading));
  const n = refused;
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(refused, n, 'left for the next sync: no retry loop against the server');
  assert.equal((await pendingOf(page)).photos, 1, 'still counted in 待同步');
  refuse = false;
  await photosUploaded(page); // the next sync
  assert.equal(refused, n);

  // Housekeeping: a photo picked in a form abandoned a day ago (no draft) goes; one on the
  // server goes when over the phone's budget, and downloads again when shown.
  const kept = await page.evaluate(async () => {
    const db = await import('/db.js');
    const photos = await import('/photos.js');
    const stray = 'f'.repeat(64);
    await db.putPhoto({ sha256: stray, size: 1, mime: 'image/jpeg', bytes: new Blob(['x']), keptAt: 1 });
    const pruned = await photos.pruneAbandoned();
    const strayLeft = !!(await db.getPhoto(stray));
    const trimmed = await db.trimUploaded(0);
    return { pruned, strayLeft, trimmed };
  });
  assert.deepEqual(kept, { pruned: 1, strayLeft: false, trimmed: 1 });
  await page.reload();
  await page.evaluate(() => window.gridsync.ready);
  await shown(page, 'visit-photos').waitFor();
  assert.equal((await storedPhotos(page)).length, 1, 'downloaded again and kept');
  await context.close();
});
