// Photos as evidence (issue 12), in Chromium at 360×800 against the real
// server: a large camera JPEG with EXIF taken offline through the file input
// is shrunk (long edge ≤ 1,600 px, orientation applied, no EXIF left), kept
// with the form's draft across a reload, attached once on save, counted in
// 待同步, uploaded chunk by chunk (resuming after a cut) once the records have
// synced, and seen by the supervisor on another phone (thumbnail, full view;
// 联网后显示 while offline). Reviewed screenshots: docs/screenshots/photos-*.png.
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

const docShot = (page, name) => page.screenshot({ path: join(root, 'docs', 'screenshots', `photos-${name}.png`) });

/** Marks written into the EXIF segment: none may survive the re-encoding. */
const SECRET = 'GPS 30.9245N 113.9160E HOME';

/**
 * A camera-like JPEG made in the page: `w`×`h` pixels (a scene of gradients,
 * shapes and sensor noise, so it compresses like a photo), with an APP1 Exif
 * segment after SOI holding Orientation = 6 (rotate 90° clockwise to view)
 * and an ImageDescription naming a home position. Returns the bytes.
 */
async function cameraJpeg(page, w = 4000, h = 3000) {
  const b64 = await page.evaluate(
    async ({ w, h, secret }) => {
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
      g.fillText('安全出口被堵', w * 0.1, h * 0.5);
      // Sensor noise, as a phone camera's photo has.
      const img = g.getImageData(0, 0, w, h);
      let seed = 12345;
      for (let i = 0; i < img.data.length; i += 4) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const n = (seed % 25) - 12;
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
    { w, h, secret: SECRET },
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
  const figures = await page.evaluate(async (b64) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const { processPhoto } = await import('/photos.js');
    const file = new File([bytes], 'IMG_20261130_091500.jpg', { type: 'image/jpeg', lastModified: Date.UTC(2026, 10, 30, 1, 15) });
    const runs = [];
    let p;
    for (let i = 0; i < 3; i++) {
      p = await processPhoto(file);
      runs.push(p.ms);
    }
    const out = new Uint8Array(await p.blob.arrayBuffer());
    const text = new TextDecoder('latin1').decode(out);
    return { inBytes: bytes.length, outBytes: p.size, width: p.width, height: p.height, quality: p.quality, takenAt: p.takenAt, runs, exif: text.includes('Exif'), sha: p.sha256 };
  }, jpeg.toString('base64'));
  console.log(`12-MP JPEG (4000×3000, ${figures.inBytes} B, EXIF orientation 6): → ${figures.width}×${figures.height}, ${figures.outBytes} B at quality ${figures.quality}; ${figures.runs.join(' / ')} ms`);
  assert.equal(figures.width, 1200, 'turned upright (orientation 6): 3000 wide becomes 1200');
  assert.equal(figures.height, 1600, 'the long edge is 1600');
  assert.ok(figures.outBytes <= 300_000, `≤ 300 KB: ${figures.outBytes}`);
  assert.ok(!figures.exif, 'no EXIF in the re-encoded bytes');
  assert.equal(figures.takenAt, Date.UTC(2026, 10, 30, 1, 15), 'the time taken is the file time');
  assert.match(figures.sha, /^[0-9a-f]{64}$/);
  await context.close();
});
