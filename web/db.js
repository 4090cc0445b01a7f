// IndexedDB behind the replica: one database, one object store, string keys.
// The replica calls persist(ops) synchronously with each batch of writes; each
// batch becomes ONE readwrite transaction, opened at once so IndexedDB runs
// them in order. flush() waits for every transaction opened so far: the app
// says "已保存" only after it resolves.

const DB_NAME = 'gridsync';
const STORE = 'kv';

let db = null;
const pending = new Set();
let failure = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error || new Error('IndexedDB 写入失败'));
    tx.onabort = () => reject(tx.error || new Error('IndexedDB 写入被中止'));
  });
}

/** Opens the database; returns every stored [key, Uint8Array] pair. */
export async function openDb() {
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  db = await req(open);
  db.onversionchange = () => db.close();
  const tx = db.transaction(STORE, 'readonly');
  const store = tx.objectStore(STORE);
  const [keys, values] = await Promise.all([req(store.getAllKeys()), req(store.getAll())]);
  return keys.map((k, i) => [String(k), new Uint8Array(values[i])]);
}

/** The replica's write callback: one transaction per batch, started now. */
export function persist(ops) {
  const tx = db.transaction(STORE, 'readwrite');
  const store = tx.objectStore(STORE);
  for (const [key, value] of ops) {
    if (value == null) store.delete(key);
    else store.put(value, key);
  }
  track(done(tx));
}

function track(p) {
  const t = p.catch((e) => {
    failure = e;
    dispatchEvent(new CustomEvent('gs-db-error', { detail: e }));
  }).finally(() => pending.delete(t));
  pending.add(t);
}

/** Resolves once every write started so far is on disk; rejects if one failed. */
export async function flush() {
  while (pending.size) await Promise.all([...pending]);
  if (failure) {
    const e = failure;
    failure = null;
    throw e;
  }
}

/** Deletes everything (sign-out); later writes still go to the same store. */
export function clearAll() {
  const tx = db.transaction(STORE, 'readwrite');
  tx.objectStore(STORE).clear();
  track(done(tx));
  return flush();
}
