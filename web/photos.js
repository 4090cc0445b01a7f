// 照片: taking or picking photos for a visit, a case or a follow-up, shrinking
// them on the phone (long edge ≤ 1,600 px, JPEG re-encoded until ≤ 300 KB,
// which drops EXIF and every other metadata), keeping them in IndexedDB,
// attaching them to the record, and showing a record's photos (thumbnails,
// full view), downloaded once with the token when the phone does not have them.
//
// The time taken is the file's lastModified: the EXIF time goes with the rest
// of the metadata (on Android the camera writes the file when the photo is
// taken, so the two agree for 拍照; a gallery file copied later carries the copy's time).

import { getPhoto, markAttached, photoLocationOn, pruneUnsaved, putPhoto, trimUploaded, unmark, updatePhoto } from './db.js';
import { S, me } from './core.js';
import { h, toast, when } from './ui.js';

/** Photos one attachment (a visit log, a case, one follow-up) may carry (shared::photos::limits::MAX_PHOTOS). */
export const MAX_PHOTOS = 9;
/** One photo's most bytes after re-encoding (shared::photos::limits::MAX_PHOTO_BYTES). */
export const MAX_PHOTO_BYTES = 1_048_576;
const TARGET_BYTES = 300_000; // what phones aim at
const LONG_EDGE = 1600;
const QUALITIES = [0.85, 0.78, 0.7, 0.62, 0.55, 0.5];
const THUMB_EDGE = 320; // a tile is ~110 CSS px wide, ~330 device px on a 3× screen

// ------------------------------------------------------------ the pipeline

/** A photo refused before it was kept, with a Chinese message for the grid manager. */
export class PhotoError extends Error {}

/** Lowercase hex SHA-256 of `buf` (an ArrayBuffer). */
export async function sha256Hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function decode(file) {
  try {
    return await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return createImageBitmap(file); // an older browser without the option: it applies EXIF orientation by default
  }
}

function canvasOf(w, h2) {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(w, h2);
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h2;
  return c;
}

function encode(canvas, quality) {
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: 'image/jpeg', quality });
  return new Promise((ok, fail) => canvas.toBlob((b) => (b ? ok(b) : fail(new Error('toBlob'))), 'image/jpeg', quality));
}

/** Draws `bitmap` with its long edge at most `edge` px and encodes it, quality stepped down until ≤ 300 KB. */
async function shrink(bitmap, edge) {
  const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const ht = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = canvasOf(w, ht);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff'; // a transparent PNG would turn black in a JPEG
  ctx.fillRect(0, 0, w, ht);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, w, ht);
  let blob = null;
  let quality = QUALITIES[0];
  for (quality of QUALITIES) {
    blob = await encode(canvas, quality);
    if (blob.size <= TARGET_BYTES) break;
  }
  return { blob, width: w, height: ht, quality, canvas };
}

/** A small JPEG of `source` (a canvas or bitmap of `w`×`ht`) for tiles: decoding nine 1,600 px photos for a list of tiles costs ~70 MB. */
async function thumbOf(source, w, ht) {
  const scale = Math.min(1, THUMB_EDGE / Math.max(w, ht));
  const c = canvasOf(Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(ht * scale)));
  const ctx = c.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, 0, 0, c.width, c.height);
  return encode(c, 0.75);
}

/** The thumbnail of a kept photo's bytes. */
async function thumbOfBlob(blob) {
  const bmp = await createImageBitmap(blob);
  try {
    return await thumbOf(bmp, bmp.width, bmp.height);
  } finally {
    bmp.close();
  }
}

/**
 * Turns a picked file into a photo to keep: {sha256, size, mime, blob,
 * takenAt, width, height, quality, ms}. Throws PhotoError for a file that is
 * not a readable image.
 */
export async function processPhoto(file) {
  const t0 = performance.now();
  if (file.type && !file.type.startsWith('image/')) throw new PhotoError(`“${file.name}”不是图片，未添加`);
  let bitmap;
  try {
    bitmap = await decode(file);
  } catch {
    throw new PhotoError(`“${file.name || '这个文件'}”无法作为图片读取（不是图片，或手机不支持这种格式），未添加`);
  }
  let out;
  try {
    out = await shrink(bitmap, LONG_EDGE);
    // Rare (a photo of fine noise): smaller until within the hard limit.
    for (let edge = LONG_EDGE * 0.8; out.blob.size > MAX_PHOTO_BYTES && edge >= 400; edge *= 0.8) out = await shrink(bitmap, edge);
  } finally {
    bitmap.close();
  }
  if (out.blob.size > MAX_PHOTO_BYTES) throw new PhotoError('照片压缩后仍超过 1MB，未添加');
  const thumb = await thumbOf(out.canvas, out.width, out.height);
  const buf = await out.blob.arrayBuffer();
  const blob = new Blob([buf], { type: 'image/jpeg' });
  return {
    sha256: await sha256Hex(buf),
    size: buf.byteLength,
    mime: 'image/jpeg',
    blob,
    thumb,
    takenAt: file.lastModified || Date.now(),
    width: out.width,
    height: out.height,
    quality: out.quality,
    ms: Math.round(performance.now() - t0),
  };
}

/** Where the phone is, if 照片记录位置 is on and the position comes within a few seconds; else null. */
function position() {
  if (!photoLocationOn() || !navigator.geolocation) return Promise.resolve(null);
  return new Promise((ok) => {
    navigator.geolocation.getCurrentPosition(
      (p) => ok({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy ?? null }),
      () => ok(null),
      { enableHighAccuracy: true, timeout: 8000, maximumAge: 120_000 },
    );
  });
}

// ---------------------------------------------------------- a record's photos

/** A photo entry as the replica lists it, with both spellings read. */
function normal(p) {
  return {
    id: p.id,
    sha256: p.sha256,
    size: p.size,
    mime: p.mime,
    takenAt: p.taken_at ?? p.takenAt ?? null,
    location: p.location ?? null,
    by: p.by ?? null,
    followUp: p.follow_up ?? p.followUp ?? null,
  };
}

/** The photos of a listed record `l`; `followUp` an id for one follow-up's, null for the record's own. */
export function photosOf(l, followUp = null) {
  const list = (l && ((l.record && l.record.photos) || l.photos)) || [];
  return list.map(normal).filter((p) => (p.followUp || null) === (followUp || null));
}

/** What the replica takes for one picked photo (`followUp` left to the caller). */
function newPhoto(p, followUp) {
  const photo = { sha256: p.sha256, size: p.size, mime: p.mime, takenAt: p.takenAt };
  if (p.location) photo.location = p.location;
  if (followUp) photo.followUp = followUp;
  return photo;
}

/**
 * Runs `edit` (a replica edit attaching `photos`) with the photos marked for
 * upload first, so no attached photo is ever left out of the uploads; if the
 * replica refuses, the marks are taken back (the photos wait in the form
 * again) and its error is thrown.
 */
async function withUploadMarks(docId, photos, edit) {
  const before = await markAttached(photos.map((p) => p.sha256), docId);
  try {
    return edit();
  } catch (e) {
    await unmark(before).catch(() => {});
    throw e;
  }
}

/**
 * Attaches the photos `picked` ({sha256, size, mime, takenAt, location}) to
 * visit log or case `docId`, in one change, each once: a photo the record has
 * already (a repeated save) is left out. Throws what the replica throws.
 */
export async function attachPhotos(docId, picked) {
  const have = new Set(photosOf(S.phone.record(docId)).map((p) => p.sha256));
  const todo = picked.filter((p) => !have.has(p.sha256));
  if (!todo.length) return;
  await withUploadMarks(docId, todo, () => S.phone.addPhotos(docId, todo.map((p) => newPhoto(p)), Date.now()));
}

/**
 * Adds a follow-up to case `caseId` with its photos `picked`, in one change;
 * returns the follow-up's id. Throws what the replica throws (nothing kept).
 */
export async function addFollowUp(caseId, note, satisfaction, picked) {
  const at = Date.now();
  if (!picked.length) return S.phone.addFollowUp(caseId, note, satisfaction, at);
  return withUploadMarks(caseId, picked, () => S.phone.addFollowUpWithPhotos(caseId, note, satisfaction, picked.map((p) => newPhoto(p)), at));
}

// ------------------------------------------------------------------ showing

// Object URLs for this page's life, per kind: 'thumb' for tiles, 'full' for the full view.
const urls = { thumb: new Map(), full: new Map() };
const loading = new Map(); // `${kind}:${sha256}` -> Promise<url> (one download per photo at a time)

/**
 * The object URL of photo `ref` ({sha256, size}), its thumbnail (`kind`
 * 'thumb') or the whole photo ('full'): from IndexedDB, else downloaded with
 * the token, its hash checked, and kept (a thumbnail is made once and kept
 * too). Throws with `.offline` when there is no connection, `.missing` when
 * the server has not got it (yet).
 */
export function photoUrl(ref, kind = 'full') {
  const sha = ref.sha256;
  const cache = urls[kind];
  if (cache.has(sha)) return Promise.resolve(cache.get(sha));
  const key = `${kind}:${sha}`;
  if (!loading.has(key)) {
    const p = (async () => {
      const kept = await getPhoto(sha).catch(() => null);
      let blob = kind === 'thumb' && kept && kept.thumb;
      if (!blob) {
        const full = (kept && kept.bytes) || (await download(ref));
        blob = full;
        if (kind === 'thumb') {
          try {
            blob = await thumbOfBlob(full);
            updatePhoto(sha, { thumb: blob }).catch((e) => console.warn('thumbnail not kept', e));
          } catch (e) {
            console.warn('no thumbnail, the photo itself is shown', e);
          }
        }
      }
      const url = URL.createObjectURL(blob);
      cache.set(sha, url);
      return url;
    })();
    loading.set(key, p);
    p.finally(() => loading.delete(key)).catch(() => {});
  }
  return loading.get(key);
}

async function download(ref) {
  const sha = ref.sha256;
  const fail = (text, kind) => Object.assign(new Error(text), { [kind]: true });
  if (!navigator.onLine) throw fail('联网后显示', 'offline');
  let resp;
  try {
    resp = await fetch(`/v1/photos/${sha}`, { headers: { Authorization: `Bearer ${me().token}` } });
  } catch {
    throw fail('联网后显示', 'offline');
  }
  if (resp.status === 404) throw fail('照片尚未上传', 'missing');
  if (!resp.ok) throw fail(`照片暂时无法显示（${resp.status}）`, 'error');
  const buf = await resp.arrayBuffer();
  if ((await sha256Hex(buf)) !== sha) throw fail('照片内容校验失败', 'error');
  const mime = (resp.headers.get('Content-Type') || ref.mime || 'image/jpeg').split(';')[0];
  const blob = new Blob([buf], { type: mime });
  // Kept: a screen shown once shows it again offline. Someone else's photo is never "to upload".
  await putPhoto({ sha256: sha, size: buf.byteLength, mime, bytes: blob, takenAt: ref.takenAt, uploaded: true }).catch((e) => console.warn('photo not kept', e));
  return blob;
}

/** One thumbnail tile of photo `ref`; tap for the full view. */
function tile(ref, extra) {
  const el = h('button.photo-tile', { type: 'button', testid: 'photo-tile', 'data-sha': ref.sha256, 'aria-label': '查看照片' });
  const img = h('img', { alt: '照片', decoding: 'async', draggable: 'false' });
  const show = (url) => {
    img.src = url;
    el.dataset.state = 'shown';
    el.replaceChildren(img, ...(extra || []));
  };
  const known = urls.thumb.get(ref.sha256);
  if (known) show(known);
  else {
    el.dataset.state = 'loading';
    el.replaceChildren(h('span.photo-note', null, '…'), ...(extra || []));
    photoUrl(ref, 'thumb').then(show, (e) => {
      el.dataset.state = e.offline ? 'offline' : e.missing ? 'missing' : 'error';
      el.replaceChildren(h('span.photo-note', { testid: 'photo-unavailable' }, e.message), ...(extra || []));
    });
  }
  el.addEventListener('click', (e) => {
    if (e.target.closest('.photo-x')) return;
    if (el.dataset.state === 'shown') {
      photoUrl(ref, 'full').then(
        (url) => fullView(ref, url),
        (err) => toast(err.message, 'error'),
      );
    }
    else if (el.dataset.state !== 'loading') {
      // Offline before: tapping again tries again (the connection may be back).
      const again = tile(ref, extra);
      el.replaceWith(again);
    }
  });
  return el;
}

/**
 * The full view of one photo, over the screen; a tap, 关闭 or the phone's
 * back button closes it (it takes a history entry, so back does not leave the record).
 */
function fullView(ref, url) {
  let open = true;
  const remove = () => {
    if (!open) return;
    open = false;
    view.remove();
    removeEventListener('popstate', remove);
  };
  const close = () => {
    if (open && history.state && history.state.gsPhoto) history.back(); // popstate removes it
    else remove();
  };
  const facts = [ref.takenAt ? `拍摄于 ${when(ref.takenAt)}` : null, ref.location ? `位置 ${Number(ref.location.lat).toFixed(5)}, ${Number(ref.location.lon).toFixed(5)}` : null].filter(Boolean).join(' · ');
  const view = h(
    'div.photo-full',
    { testid: 'photo-full', role: 'dialog', 'aria-modal': 'true', 'aria-label': '照片', onclick: close },
    h('img', { src: url, alt: '照片', testid: 'photo-full-img' }),
    h('div.photo-full-bar', null, h('span', null, facts), h('button.btn.small', { type: 'button', testid: 'photo-full-close' }, '关闭')),
  );
  history.pushState({ ...(history.state || {}), gsPhoto: true }, '');
  addEventListener('popstate', remove);
  document.body.append(view);
}

/** Thumbnails of `refs` (a record's, or a follow-up's); null when there are none. */
export function photoStrip(refs, testid = 'photos') {
  if (!refs.length) return null;
  return h('div.photo-strip', { testid, 'data-count': refs.length }, refs.map((r) => tile(r)));
}

// ------------------------------------------------- photos of abandoned forms

const PRUNE_AFTER = 86_400_000; // a photo picked in a form left unsaved for a day without a draft

/**
 * Deletes the bytes of photos picked in forms that were never saved and whose
 * draft is gone (discarded): every draft of every person on this phone keeps its photos.
 */
export async function pruneAbandoned() {
  const keep = new Set();
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith('gs-draft/')) continue;
    try {
      for (const p of JSON.parse(localStorage.getItem(key))?.values?.photos || []) keep.add(p.sha256);
    } catch {}
  }
  return pruneUnsaved(keep, Date.now() - PRUNE_AFTER);
}
/** The most bytes of photos already on the server a phone keeps (~700 photos); the oldest kept go first. */
export const KEEP_UPLOADED_BYTES = 200 * 1024 * 1024;

setTimeout(() => {
  pruneAbandoned()
    .then(() => trimUploaded(KEEP_UPLOADED_BYTES))
    .catch((e) => console.warn('photos not pruned', e));
}, 15_000);

// ------------------------------------------------------------ the form's row

/**
 * The 照片 row of a form: what the record has already (fixed: photos are
 * never taken back), what was picked for it and not saved yet (removable),
 * and 拍照 / 相册. `picked` restores a draft's photos ({sha256, size, mime,
 * takenAt, location}; the bytes are in IndexedDB). The row fires a bubbling
 * `change` when what is picked changes, so the form's draft keeps it.
 * Returns {el, value (picked, not yet attached), ready() (resolves once the
 * photos being processed are kept)}.
 */
export function photoPicker({ attached = [], picked = [], testid = 'photos' } = {}) {
  let value = [...picked];
  let busy = 0;
  let work = Promise.resolve();
  const tiles = h('div.photo-strip', { testid: `${testid}-tiles` });
  const note = h('div.muted.small', { testid: `${testid}-count` });
  const announce = () => {
    // Picked photos are unsaved input: a sync does not redraw the screen under them.
    if (value.length) el.dataset.dirty = '1';
    else delete el.dataset.dirty;
    el.dispatchEvent(new Event('change', { bubbles: true }));
  };
  const room = () => MAX_PHOTOS - attached.length - value.length;

  const paint = () => {
    const n = attached.length + value.length;
    tiles.dataset.count = n;
    tiles.replaceChildren(
      ...attached.map((r) => tile(r)),
      ...value.map((p) =>
        tile(p, [
          h(
            'span.photo-x',
            {
              role: 'button',
              'aria-label': '移除这张照片',
              testid: `${testid}-remove`,
              onclick: () => {
                value = value.filter((x) => x !== p);
                paint();
                announce();
              },
            },
            '×',
          ),
        ]),
      ),
      ...Array.from({ length: busy }, () => h('div.photo-tile.busy', { testid: `${testid}-busy` }, h('span.photo-note', null, '正在处理…'))),
    );
    note.textContent = n ? `已有 ${n} 张，最多 ${MAX_PHOTOS} 张${attached.length ? '（已保存的照片不能删除）' : ''}` : `可拍照或从相册选择，最多 ${MAX_PHOTOS} 张`;
    for (const b of buttons) b.classList.toggle('disabled', room() <= 0);
  };

  const add = async (files) => {
    files = [...files];
    if (!files.length) return;
    const space = room() - busy;
    if (space <= 0) return toast(`每条记录最多 ${MAX_PHOTOS} 张照片，不能再添加`, 'error');
    if (files.length > space) {
      toast(`每条记录最多 ${MAX_PHOTOS} 张照片，只添加了前 ${space} 张`, 'error');
      files = files.slice(0, space);
    }
    busy += files.length;
    paint();
    const where = position();
    const errors = [];
    const added = [];
    for (const file of files) {
      try {
        const p = await processPhoto(file);
        await putPhoto({ sha256: p.sha256, size: p.size, mime: p.mime, bytes: p.blob, thumb: p.thumb, takenAt: p.takenAt });
        if (!urls.thumb.has(p.sha256)) urls.thumb.set(p.sha256, URL.createObjectURL(p.thumb));
        if (value.some((x) => x.sha256 === p.sha256) || attached.some((x) => x.sha256 === p.sha256)) errors.push('同一张照片已添加过');
        else {
          const entry = { sha256: p.sha256, size: p.size, mime: p.mime, takenAt: p.takenAt, location: null };
          value.push(entry);
          added.push(entry);
        }
        console.info(`photo ${file.name}: ${file.size} B → ${p.size} B, ${p.width}×${p.height}, q ${p.quality}, ${p.ms} ms`);
      } catch (e) {
        console.warn(e);
        errors.push(e instanceof PhotoError ? e.message : e.kind === 'storage' ? e.message : `照片未添加：${e.message || e}`);
      }
      busy--;
      paint();
      announce(); // the draft keeps each photo as soon as it is kept
    }
    const loc = await where;
    if (loc) for (const p of added) p.location = loc;
    paint();
    announce();
    if (errors.length) toast(errors.join('；'), 'error');
  };

  const input = (attrs, label, suffix) => {
    const inp = h('input', { type: 'file', accept: 'image/*', hidden: true, testid: `${testid}-${suffix}`, ...attrs });
    // Not the form's input either: the row marks itself dirty while it holds picked photos.
    inp.addEventListener('input', (e) => e.stopPropagation());
    inp.addEventListener('change', (e) => {
      e.stopPropagation(); // not the form's input: the row announces its own change
      const files = inp.files;
      work = work.then(() => add(files)).finally(() => (inp.value = ''));
    });
    return h('label.btn.photo-btn', { testid: `${testid}-${suffix}-button` }, label, inp);
  };
  const buttons = [input({ capture: 'environment' }, '拍照', 'camera'), input({ multiple: true }, '相册', 'gallery')];
  const el = h('div.photo-row', { testid }, tiles, h('div.row', null, ...buttons), note);
  paint();
  if (value.length) el.dataset.dirty = '1';
  return {
    el,
    get value() {
      return value.map((p) => ({ ...p }));
    },
    /** Resolves once every photo picked so far is processed and kept. */
    ready: () => work,
    /** After a save: the picked photos are now the record's. */
    saved(refs) {
      attached = refs;
      value = [];
      paint();
    },
  };
}
