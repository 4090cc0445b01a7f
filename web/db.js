// IndexedDB behind the replica: one database, one object store, string keys.
// The replica calls persist(ops) synchronously with each batch of writes; each
// batch becomes ONE readwrite transaction, opened at once so IndexedDB runs
// them in order, and gets a number. flush() waits for the transactions opened
// so far: the app says "已保存" only after it resolves.
//
// A write can fail after the replica took the edit into memory: the phone's
// storage is full (QuotaExceededError, or on a full disk an UnknownError after
// which Chromium closes the connection and cannot even open the database again
// until space is freed). Then:
// - the replica takes back the edits of the failed batch and every later one
//   (phone.writeFailed), so memory never shows or sends an unsaved edit;
// - every new write is refused at once until the replica has been reloaded
//   from what IndexedDB holds (retried every few seconds while the disk cannot
//   be read); a sync's own writes cannot be taken back one by one, the reload
//   covers them;
// - the failure is reported once ('gs-db-error'), and cleared by the next
//   write that succeeds ('gs-db-ok').
//
// Photos live beside the records in a second store, `photos`, keyed by their
// SHA-256: {sha256, mime, size, bytes: Blob, thumb?: Blob (a 320 px copy for
// tiles), takenAt, keptAt, record, uploaded, pending?}. `pending: 1`
// (indexed; absent otherwise) marks a photo attached to a record and not yet
// on the server: those count in 待同步. A photo picked in a form not yet
// saved has neither (it rides in the form's draft).

const DB_NAME = 'gridsync';
const VERSION = 2; // 1: records only; 2: + photos
const STORE = 'kv';
const PHOTOS = 'photos';
const RETRY_MS = 3000;

/** What the grid manager reads when the phone's storage is full. */
export const QUOTA_MESSAGE = '手机存储空间不足，记录未保存。请先同步，并清理手机空间（如删除不用的照片、视频）后重试。';

let db = null;
let batches = 0;
const pending = new Set();
let blocked = null; // the failure that refuses writes until the replica is reloaded
let recovering = null;
let retry = 0;
let reported = false; // a failure was shown and no write has succeeded since
let replica = { reload() {}, failed() {}, done() {} };

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

// Chromium: QuotaExceededError over quota; an UnknownError naming
// FILE_ERROR_NO_SPACE when the disk itself is full.
function isQuota(e) {
  return !!e && (e.name === 'QuotaExceededError' || /quota|no_?space|disk (is )?full/i.test(String(e.message || '')));
}

/** A failed write, with a Chinese message that says what to do. */
export function storageError(cause) {
  const quota = isQuota(cause);
  const err = new Error(
    quota ? QUOTA_MESSAGE : `本机存储写入失败，记录未保存（${(cause && (cause.name || cause.message)) || '未知错误'}）。请重新打开应用后重试。`,
  );
  err.kind = 'storage';
  err.quota = quota;
  err.cause = cause;
  return err;
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error || new Error('IndexedDB 写入失败'));
    tx.onabort = () => reject(tx.error || new Error('IndexedDB 写入被中止'));
  });
}

async function readAll() {
  const tx = db.transaction(STORE, 'readonly');
  const store = tx.objectStore(STORE);
  const [keys, values] = await Promise.all([req(store.getAllKeys()), req(store.getAll())]);
  return keys.map((k, i) => [String(k), new Uint8Array(values[i])]);
}

async function connect() {
  const open = indexedDB.open(DB_NAME, VERSION);
  // From nothing or from version 1: every store that is there stays as it is.
  open.onupgradeneeded = () => {
    const d = open.result;
    if (!d.objectStoreNames.contains(STORE)) d.createObjectStore(STORE);
    if (!d.objectStoreNames.contains(PHOTOS)) d.createObjectStore(PHOTOS, { keyPath: 'sha256' }).createIndex('pending', 'pending');
  };
  try {
    db = await req(open);
  } catch (e) {
    // The upgrade could not be written (a full phone): the records are still
    // read from the version there is; photos wait until the upgrade succeeds.
    const old = indexedDB.open(DB_NAME);
    old.onupgradeneeded = () => old.result.createObjectStore(STORE); // a brand-new database: records only
    db = await req(old).catch(() => Promise.reject(e));
    console.warn('IndexedDB not upgraded, photos unavailable for now:', e);
  }
  db.onversionchange = () => db.close();
}

// Back in the app (say, after deleting photos to free space): try again at once.
document.addEventListener('visibilitychange', () => {
  if (blocked && document.visibilityState === 'visible') recovering ||= recover();
});

/** Opens the database; returns every stored [key, Uint8Array] pair. */
export async function openDb() {
  await connect();
  const [entries] = await Promise.all([readAll(), countPending().catch((e) => console.warn('photos not counted', e))]);
  return entries;
}

/**
 * How db.js reaches the replica in memory: `reload(entries)` replaces it with
 * what the disk holds, `failed(n)` takes back the edits of batch n and later,
 * `done(n)` says batch n and those before it are on disk.
 */
export function setReplica(hooks) {
  replica = hooks;
}

/** True while writes are refused after a failed one (the phone's storage is full). */
export function writesBlocked() {
  return !!blocked;
}

function fail(err) {
  if (!blocked) blocked = err;
  recovering ||= recover();
}

/** The replica's write callback: one transaction per batch, started now; returns the batch's number. */
export function persist(ops) {
  // Refused at once (the replica then keeps nothing of this edit) until a
  // failed write has been undone in memory.
  if (blocked) {
    recovering ||= recover();
    throw blocked;
  }
  const n = ++batches;
  try {
    // Strict: complete only once on disk (Chromium's default completes before
    // the flush; a phone whose battery dies right after "已保存" keeps it).
    const tx = db.transaction(STORE, 'readwrite', { durability: 'strict' });
    const store = tx.objectStore(STORE);
    for (const [key, value] of ops) {
      if (value == null) store.delete(key);
      else store.put(value, key);
    }
    track(done(tx), n);
  } catch (e) {
    // E.g. Chromium closed the connection after a write to a full disk failed.
    fail(storageError(e));
    throw blocked;
  }
  return n;
}

function track(p, n) {
  const w = { error: null };
  w.done = p
    .then(
      () => {
        replica.done(n);
        if (reported && !blocked) {
          reported = false;
          dispatchEvent(new CustomEvent('gs-db-ok'));
        }
      },
      (e) => {
        w.error = storageError(e);
        try {
          replica.failed(n);
        } catch (err) {
          console.error('taking back unsaved edits', err);
        }
        fail(w.error);
      },
    )
    .finally(() => pending.delete(w));
  pending.add(w);
}

/** Reloads the replica from disk once every write under way has ended, then
 * lets writes through; while the disk cannot be read, tries again later. */
async function recover() {
  const err = blocked;
  clearTimeout(retry);
  try {
    while (pending.size) await Promise.all([...pending].map((w) => w.done));
    let entries;
    try {
      entries = await readAll();
    } catch {
      // The connection was closed under us: open it again (fails while the disk is full).
      try {
        db.close();
      } catch {}
      await connect();
      entries = await readAll();
    }
    replica.reload(entries);
    blocked = null;
  } catch (e) {
    console.warn('the replica cannot be reloaded from disk yet', e);
    retry = setTimeout(() => (recovering ||= recover()), RETRY_MS);
  } finally {
    recovering = null;
    if (!reported) {
      reported = true;
      dispatchEvent(new CustomEvent('gs-db-error', { detail: err }));
    }
  }
}

/** Resolves once every write started so far is on disk; rejects if one of
 * them failed (its edits already taken back out of memory). */
export async function flush() {
  const mine = [...pending];
  await Promise.all(mine.map((w) => w.done));
  if (recovering) await recovering;
  const failed = mine.find((w) => w.error);
  if (failed) throw failed.error;
}

/** Deletes everything (sign-out); later writes still go to the same store. */
export async function clearAll() {
  let tx;
  try {
    tx = db.transaction(STORE, 'readwrite');
  } catch {
    await connect(); // closed after a failed write
    tx = db.transaction(STORE, 'readwrite');
  }
  tx.objectStore(STORE).clear();
  track(done(tx), ++batches);
  await flush();
  // Another person's photos never stay on the phone either.
  if (db.objectStoreNames.contains(PHOTOS)) {
    try {
      const ptx = db.transaction(PHOTOS, 'readwrite');
      ptx.objectStore(PHOTOS).clear();
      await done(ptx);
    } catch (e) {
      console.warn('photos not cleared', e);
    }
  }
  photosPending = 0;
}

// ------------------------------------------------------------------ photos

let photosPending = 0;

/** How many photos attached to records are not on the server yet (待同步). */
export function pendingPhotos() {
  return photosPending;
}

async function countPending() {
  if (!db.objectStoreNames.contains(PHOTOS)) return 0;
  const tx = db.transaction(PHOTOS, 'readonly');
  photosPending = await req(tx.objectStore(PHOTOS).index('pending').count());
  return photosPending;
}

/** One transaction on the photos store; resolves with `fn`'s result once it is on disk. */
async function photoTx(mode, fn) {
  if (!db.objectStoreNames.contains(PHOTOS)) throw storageError(new Error('照片存储尚未建立'));
  const tx = db.transaction(PHOTOS, mode, mode === 'readwrite' ? { durability: 'strict' } : undefined);
  const result = fn(tx.objectStore(PHOTOS));
  await done(tx);
  const value = result instanceof IDBRequest ? result.result : result;
  if (mode === 'readwrite') await countPending().catch(() => {});
  return value;
}

/** The stored photo `sha256` ({sha256, mime, size, bytes: Blob, ...}), or null. */
export async function getPhoto(sha256) {
  return (await photoTx('readonly', (s) => s.get(sha256))) || null;
}

/**
 * Keeps a photo's bytes (a Blob). A photo already stored keeps its state
 * (attached, uploaded); only the bytes are written for a new one.
 * Throws the storage error (a full phone) with its Chinese message.
 */
export async function putPhoto(photo) {
  try {
    await photoTx('readwrite', (s) => {
      const r = s.get(photo.sha256);
      r.onsuccess = () => {
        if (!r.result) s.put({ record: null, uploaded: false, keptAt: Date.now(), ...photo });
        else if (!r.result.bytes && photo.bytes) s.put({ ...r.result, bytes: photo.bytes });
      };
    });
  } catch (e) {
    throw storageError(e);
  }
}

/** Adds `patch` (say, a thumbnail) to a stored photo; nothing if it is not stored. */
export async function updatePhoto(sha256, patch) {
  await photoTx('readwrite', (s) => {
    const r = s.get(sha256);
    r.onsuccess = () => {
      if (r.result) s.put({ ...r.result, ...patch, sha256 });
    };
  });
}

/**
 * Marks photos as attached to record `record` and waiting for upload (before
 * the replica is told, so no attached photo is ever left out of the uploads).
 * Resolves with what each photo was before, for `unmark` (the replica refused).
 */
export async function markAttached(hashes, record) {
  const before = [];
  await photoTx('readwrite', (s) => {
    for (const sha of hashes) {
      const r = s.get(sha);
      r.onsuccess = () => {
        const p = r.result;
        if (!p || p.uploaded) return;
        before.push({ sha256: sha, record: p.record ?? null, pending: p.pending });
        p.pending = 1;
        p.record = record;
        s.put(p);
      };
    }
  });
  return before;
}

/** Puts back what `markAttached` changed (`before`, as it returned). */
export async function unmark(before) {
  await photoTx('readwrite', (s) => {
    for (const b of before) {
      const r = s.get(b.sha256);
      r.onsuccess = () => {
        const p = r.result;
        if (!p || p.uploaded) return;
        p.record = b.record;
        if (b.pending) p.pending = b.pending;
        else delete p.pending;
        s.put(p);
      };
    }
  });
}

/** Marks a photo as on the server: it no longer counts in 待同步. */
export async function markUploaded(sha256) {
  await photoTx('readwrite', (s) => {
    const r = s.get(sha256);
    r.onsuccess = () => {
      const p = r.result;
      if (!p) return;
      delete p.pending;
      p.uploaded = true;
      s.put(p);
    };
  });
}

/**
 * Deletes the photos picked in a form that was never saved (no record, not
 * uploaded, kept before `before`), except those whose hash `keep` has (a
 * draft's). Returns how many went.
 */
export async function pruneUnsaved(keep, before) {
  let n = 0;
  await photoTx('readwrite', (s) => {
    const r = s.openCursor();
    r.onsuccess = () => {
      const c = r.result;
      if (!c) return;
      const p = c.value;
      if (!p.record && !p.pending && !p.uploaded && (p.keptAt || 0) < before && !keep.has(p.sha256)) {
        c.delete();
        n++;
      }
      c.continue();
    };
  });
  return n;
}

/**
 * Keeps the photos already on the server (uploaded, or downloaded to be
 * shown) within `maxBytes`: the oldest kept go first; they download again
 * when shown. Photos waiting for upload or in a draft are never touched.
 * Returns how many went.
 */
export async function trimUploaded(maxBytes) {
  const onServer = [];
  await photoTx('readonly', (s) => {
    const r = s.openCursor();
    r.onsuccess = () => {
      const c = r.result;
      if (!c) return;
      const p = c.value;
      if (p.uploaded && !p.pending) onServer.push({ sha256: p.sha256, bytes: (p.size || 0) + ((p.thumb && p.thumb.size) || 0), at: p.keptAt || 0 });
      c.continue();
    };
  });
  let total = onServer.reduce((n, p) => n + p.bytes, 0);
  if (total <= maxBytes) return 0;
  onServer.sort((a, b) => a.at - b.at);
  const gone = [];
  for (const p of onServer) {
    if (total <= maxBytes) break;
    gone.push(p.sha256);
    total -= p.bytes;
  }
  await photoTx('readwrite', (s) => {
    for (const sha of gone) s.delete(sha);
  });
  return gone.length;
}

/** The photos waiting for upload, oldest first by time taken. */
export async function photosToUpload() {
  const list = await photoTx('readonly', (s) => s.index('pending').getAll());
  return list.sort((a, b) => (a.takenAt || 0) - (b.takenAt || 0));
}

// ---------------------------------------------------------------- settings

const PHOTO_LOCATION = 'gs-photo-location';

/** Whether a photo records where it was taken (我的 > 照片记录位置); off unless the grid manager switched it on. */
export function photoLocationOn() {
  try {
    return localStorage.getItem(PHOTO_LOCATION) === '1';
  } catch {
    return false;
  }
}

/** Switches 照片记录位置 on or off on this phone. */
export function setPhotoLocation(on) {
  try {
    if (on) localStorage.setItem(PHOTO_LOCATION, '1');
    else localStorage.removeItem(PHOTO_LOCATION);
  } catch (e) {
    console.warn('setting not kept', e);
  }
}
