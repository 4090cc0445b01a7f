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

const DB_NAME = 'gridsync';
const STORE = 'kv';
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
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  db = await req(open);
  db.onversionchange = () => db.close();
}

// Back in the app (say, after deleting photos to free space): try again at once.
document.addEventListener('visibilitychange', () => {
  if (blocked && document.visibilityState === 'visible') recovering ||= recover();
});

/** Opens the database; returns every stored [key, Uint8Array] pair. */
export async function openDb() {
  await connect();
  return readAll();
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
  return flush();
}
