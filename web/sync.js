// Sync with the server: POST /v1/sync with the replica's request (gzipped),
// apply the answer, repeat while the replica asks for another round.
// Runs by itself: at start, on `online`, on a timer while online (backoff on
// failure), shortly after each local save, and on demand. Never two at once:
// a request made while one runs starts another right after it.
// When the server is busy (503/429 with Retry-After) the next try waits what
// it asked, stretched by a random 0-25 % so that phones refused together do
// not come back together; other failures back off exponentially, jittered.
//
// Photos go after each successful sync, on their own (a sync never waits
// behind them): one at a time, chunk by chunk, each photo resuming where the
// server says it stopped (see uploadPhotos below).

import { flush, markUploaded, photosToUpload } from './db.js';

const OK_INTERVAL = 60_000; // pull others' changes every minute while things work
const FIRST_BACKOFF = 15_000;
const MAX_BACKOFF = 300_000;
const TIMEOUT = 90_000; // weak 2G: give a round trip time, but not forever
// The checks after a sync (/v1/me, /v1/directory) end the sync run: one that
// never answered kept the run, and so every later sync, waiting for good.
const CHECK_TIMEOUT = 30_000;
const SAVE_DEBOUNCE = 2_000;
const MAX_RETRY_AFTER = 600; // seconds: never wait longer than this, whatever a server says

export const state = {
  syncing: false,
  // null (not tried yet) | 'ok' | 'network' (no connection) | 'error' (server said no) | 'auth' (401)
  // | 'busy' (503/429 with Retry-After: try again after retryAfter seconds)
  outcome: null,
  message: '',
  failures: 0,
  retryAfter: 0,
  retryAt: 0, // Date.now() before which automatic syncs wait (the server said busy)
  lastReport: null,
  clockSkew: 0, // this phone's clock minus the server's (ms), from the last answer's Date header
};

let getPhone = () => null;
let running = null;
let rerun = false;
let timer = 0;
let saveTimer = 0;
const listeners = new Set();

export function onChange(fn) {
  listeners.add(fn);
}
function emit(dataChanged) {
  for (const fn of listeners) fn(dataChanged);
}

export function isOnline() {
  return navigator.onLine && state.outcome !== 'network';
}

async function gzip(bytes) {
  if (typeof CompressionStream === 'undefined') return null;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function errorBody(resp) {
  try {
    const j = await resp.json();
    if (j && typeof j === 'object') return j;
  } catch {}
  return {};
}

/** Seconds a 503/429 asks to wait (Retry-After, else the body's retry_after_s), or 0. */
function retryAfterOf(resp, body) {
  if (resp.status !== 503 && resp.status !== 429) return 0;
  const header = Number.parseInt(resp.headers.get('Retry-After') || '', 10);
  const secs = Number.isFinite(header) ? header : Number(body.retry_after_s) || 0;
  return Math.min(MAX_RETRY_AFTER, Math.max(0, secs));
}

async function roundTrip(phone, token) {
  // The last round's writes first: what failed to save is taken back before anything is sent.
  await flush();
  const body = phone.buildRequest();
  const gz = await gzip(body);
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-gridsync' };
  if (gz) headers['Content-Encoding'] = 'gzip';
  // What waits to go up (this request carries some or all of it): the console's 待同步 per device.
  headers['X-Pending-Changes'] = String(phone.pendingChanges());
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), TIMEOUT);
  let resp, bytes;
  try {
    resp = await fetch('/v1/sync', { method: 'POST', headers, body: gz || body, signal: ctl.signal, cache: 'no-store' });
    const served = Date.parse(resp.headers.get('Date') || '');
    if (Number.isFinite(served)) state.clockSkew = Date.now() - served;
    if (resp.ok) bytes = new Uint8Array(await resp.arrayBuffer());
  } catch (e) {
    const err = new Error('网络不可用');
    err.kind = 'network';
    throw err;
  } finally {
    clearTimeout(t);
  }
  if (resp.status === 401) {
    // device_revoked: sign in again (unsynced work is kept and pushed then);
    // person_disabled: only an administrator can help.
    const { error: code = '' } = await errorBody(resp);
    const err = new Error(
      code === 'person_disabled'
        ? '此账号已被停用，无法同步，请联系管理员'
        : code === 'device_revoked'
          ? '本机的登录已失效（设备被管理员注销、在别的手机上重新登录或密码已修改），请重新登录'
          : '登录已失效，请重新登录',
    );
    err.kind = 'auth';
    err.code = code;
    throw err;
  }
  if (!resp.ok) {
    const body = await errorBody(resp);
    if (resp.status === 409 && body.error === 'store_restored' && typeof body.cursor === 'string') {
      // The server was restored from a backup: every change of this device
      // goes up again (those it has count as duplicates), and sync goes on
      // from the cursor it gave, without downloading everything again.
      const pending = phone.storeRestored(body.cursor);
      return { acknowledged: 0, rejected: 0, received: 0, more: false, pending, again: true };
    }
    const err = new Error(body.message || `服务器错误（${resp.status}）`);
    err.retryAfter = retryAfterOf(resp, body);
    err.kind = err.retryAfter > 0 ? 'busy' : 'error';
    throw err;
  }
  return phone.applyResponse(bytes, Date.now());
}

const TERRITORY_CHECK = 600_000; // ask /v1/me where the person works at most every ten minutes
let territoryCheckedAt = 0; // 0: not since the app opened

/**
 * After a successful sync: asks the server where the person works now
 * (`GET /v1/me`) when the app has just opened, ten minutes have passed or a
 * record was refused, so that after a move the phone shows the new territory
 * and the old one's records leave it. A failure here is left to the next time.
 */
async function checkTerritory(phone, token, refused) {
  if (!refused && territoryCheckedAt && Date.now() - territoryCheckedAt < TERRITORY_CHECK) return false;
  try {
    const resp = await fetch('/v1/me', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store', signal: AbortSignal.timeout(CHECK_TIMEOUT) });
    if (!resp.ok) return false;
    const me = await resp.json();
    if (typeof me.territory !== 'string') return false;
    territoryCheckedAt = Date.now();
    const before = phone.identity()?.territory;
    const dropped = phone.updateTerritory(me.territory);
    await flush();
    return dropped > 0 || before !== me.territory;
  } catch {
    return false;
  }
}

const DIRECTORY_CHECK = 60_000; // ask /v1/directory at most once a minute (the answer is mostly a 304)
let directoryCheckedAt = 0; // 0: not since the app opened
let directoryOf = ''; // the person and territory the last check was for

/**
 * After a successful sync: fetches the names of the people and territories in
 * the person's scope (`GET /v1/directory`, with `If-None-Match` so an unchanged
 * directory costs a 304) and hands them to the phone, which keeps them
 * offline. Always right after sign-in, when the app opens and after a move;
 * else at most once a minute. Returns whether the directory changed. A
 * failure here is left to the next time; the phone keeps the one it has.
 */
async function checkDirectory(phone, token) {
  const id = phone.identity();
  const whose = id ? `${id.person}|${id.territory}` : '';
  if (whose === directoryOf && directoryCheckedAt && Date.now() - directoryCheckedAt < DIRECTORY_CHECK) return false;
  try {
    const headers = { Authorization: `Bearer ${token}` };
    const tag = phone.directoryEtag();
    if (tag) headers['If-None-Match'] = tag;
    const resp = await fetch('/v1/directory', { headers, cache: 'no-store', signal: AbortSignal.timeout(CHECK_TIMEOUT) });
    if (resp.status !== 304 && !resp.ok) return false;
    let changed = false;
    if (resp.ok) {
      changed = phone.setDirectory(await resp.json(), resp.headers.get('ETag') || undefined);
      await flush();
    }
    directoryCheckedAt = Date.now();
    directoryOf = whose;
    return changed;
  } catch (e) {
    console.warn('directory', e);
    return false;
  }
}

async function run() {
  const phone = getPhone();
  const id = phone && phone.identity();
  if (!id) return;
  state.syncing = true;
  emit(false);
  let received = false;
  let refused = false;
  try {
    for (let round = 0; round < 200; round++) {
      const report = await roundTrip(phone, id.token);
      state.lastReport = report;
      if (report.received || report.rejected || report.acknowledged) received = true;
      state.outcome = 'ok';
      state.message = '';
      state.failures = 0;
      state.retryAfter = 0;
      state.retryAt = 0;
      refused ||= report.rejected > 0;
      if (!report.again) break;
      emit(received);
    }
    await flush();
    if (await checkTerritory(phone, id.token, refused)) received = true;
    if (await checkDirectory(phone, id.token)) received = true;
    uploadPhotos(); // not awaited: the records' sync is done
  } catch (e) {
    state.outcome = e.kind || 'error';
    state.message = e.message || String(e);
    state.code = e.code || '';
    state.retryAfter = e.retryAfter || 0;
    state.retryAt = state.retryAfter ? Date.now() + state.retryAfter * 1000 : 0;
    if (e.kind !== 'auth') state.failures++;
    if (!e.kind) console.error(e);
  } finally {
    state.syncing = false;
  }
  emit(received);
}

// ------------------------------------------------------------------ photos

const CHUNK = 262_144; // shared::photos::limits::MAX_UPLOAD_CHUNK
const SLOW_CHUNK = 65_536; // on a slow link: a cut request loses less, and each answers sooner
const SLOW_BYTES_PER_S = 32_768; // a chunk slower than this makes the next ones small
const PHOTO_TIMEOUT = 60_000;

export const photoState = {
  uploading: false,
  retryAt: 0, // the server said busy: no upload before this (Date.now())
  chunk: 0, // bytes per request last used
  requests: 0, // upload requests made since the app opened (for tests and figures)
  sentBytes: 0, // photo bytes sent since the app opened
  maxChunk: CHUNK, // the most bytes per request (the browser test lowers it to cut a photo mid-way)
};
let uploading = null;
let photoTimer = 0;

function slowLink() {
  const c = navigator.connection;
  return !!c && (c.saveData || ['slow-2g', '2g', '3g'].includes(c.effectiveType));
}

/** Why uploads stop for now (a reason), or the answer of a request. */
class Halt extends Error {}

async function photoFetch(url, init, token) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), PHOTO_TIMEOUT);
  let resp;
  try {
    resp = await fetch(url, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` }, signal: ctl.signal, cache: 'no-store' });
  } catch {
    throw new Halt('network');
  } finally {
    clearTimeout(t);
  }
  if (resp.status === 401) throw new Halt('auth');
  if (resp.status === 503 || resp.status === 429) {
    const body = await errorBody(resp);
    const secs = retryAfterOf(resp, body) || 30;
    photoState.retryAt = Date.now() + secs * 1000 * (1 + Math.random() * 0.25);
    clearTimeout(photoTimer);
    photoTimer = setTimeout(() => {
      photoState.retryAt = 0; // the time has come (a timer may fire a little early)
      uploadPhotos();
    }, photoState.retryAt - Date.now());
    throw new Halt('busy');
  }
  return resp;
}

/**
 * Uploads one photo, resuming where the server stopped. Returns 'stored', or
 * 'later' (the server does not know a record with it yet: after the next sync).
 */
async function uploadOne(p, token) {
  const url = `/v1/photos/${p.sha256}`;
  const status = await photoFetch(`${url}/upload`, {}, token);
  if (!status.ok) return 'later';
  let { stored, received } = await status.json();
  let chunk = Math.min(photoState.maxChunk, slowLink() ? SLOW_CHUNK : CHUNK);
  const bytes = p.bytes;
  if (!bytes) return 'later'; // the bytes are not on this phone (never happens for a photo taken here)
  while (!stored) {
    const from = Math.max(0, Math.min(Number(received) || 0, p.size));
    const part = bytes.slice(from, Math.min(p.size, from + chunk));
    photoState.chunk = chunk;
    photoState.requests++;
    const t0 = Date.now();
    const resp = await photoFetch(
      url,
      {
        method: 'PUT',
        headers: { 'Content-Type': p.mime || 'image/jpeg', 'X-Photo-Size': String(p.size), 'X-Upload-Offset': String(from) },
        body: part,
      },
      token,
    );
    const body = await errorBody(resp);
    if (resp.ok) {
      photoState.sentBytes += part.size;
      stored = !!body.stored;
      received = body.received;
      if (part.size / Math.max(0.001, (Date.now() - t0) / 1000) < SLOW_BYTES_PER_S) chunk = Math.min(chunk, SLOW_CHUNK);
      if (!stored && !(Number(received) > from)) return 'later'; // no progress: try again after the next sync
    } else if (resp.status === 409 && body.error === 'upload_offset') {
      received = body.received; // the server holds another amount: go on from there
    } else if (resp.status === 409) {
      return 'later'; // photo_not_referenced: the record is not on the server yet
    } else if (resp.status === 413 && chunk > SLOW_CHUNK) {
      chunk = SLOW_CHUNK; // a server (or proxy) with a smaller budget
    } else {
      console.warn(`photo ${p.sha256}: ${resp.status} ${body.error || ''} ${body.message || ''}`);
      return 'later';
    }
  }
  await markUploaded(p.sha256);
  return 'stored';
}

/**
 * Uploads the photos waiting for it, one at a time; resolves when done or
 * stopped (no connection, the server busy or signed out: the next sync tries
 * again). Never two loops at once.
 */
export function uploadPhotos() {
  if (uploading) return uploading;
  uploading = (async () => {
    const id = getPhone()?.identity();
    if (!id || Date.now() < photoState.retryAt) return;
    photoState.uploading = true;
    const skipped = new Set();
    try {
      for (;;) {
        const next = (await photosToUpload()).find((p) => !skipped.has(p.sha256));
        if (!next) break;
        const outcome = await uploadOne(next, id.token);
        if (outcome !== 'stored') skipped.add(next.sha256);
        emit(false); // 待同步 changes
      }
    } catch (e) {
      if (!(e instanceof Halt)) console.error('photo upload', e);
    } finally {
      photoState.uploading = false;
      emit(false);
    }
  })().finally(() => (uploading = null));
  return uploading;
}

/** Syncs now (or right after the sync under way); resolves when done. */
export function syncNow() {
  clearTimeout(saveTimer);
  if (running) {
    rerun = true;
    return running;
  }
  running = (async () => {
    try {
      do {
        rerun = false;
        await run();
      } while (rerun && state.outcome === 'ok');
    } finally {
      running = null;
      schedule();
    }
  })();
  return running;
}

/** Plans the next automatic sync. */
function schedule() {
  clearTimeout(timer);
  timer = 0;
  if (!navigator.onLine || state.outcome === 'auth' || !getPhone()?.identity()) return;
  let delay;
  if (state.outcome === 'ok' || state.outcome === null) delay = OK_INTERVAL;
  else if (state.outcome === 'busy') delay = state.retryAfter * 1000 * (1 + Math.random() * 0.25);
  else delay = Math.min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** Math.max(0, state.failures - 1)) * (0.75 + Math.random() * 0.5);
  timer = setTimeout(syncNow, delay);
}

/** Whether the server asked to wait and the time has not come (the timer will sync then). */
function waitingOnServer() {
  return state.outcome === 'busy' && Date.now() < state.retryAt;
}

/** After a local save: sync soon, once the person has stopped tapping. */
export function syncSoon() {
  clearTimeout(saveTimer);
  emit(false);
  if (state.outcome === 'auth' || waitingOnServer()) return;
  saveTimer = setTimeout(syncNow, SAVE_DEBOUNCE);
}

/** Forgets a failed sign-in state (after signing in again). */
export function resetState() {
  state.outcome = null;
  state.message = '';
  state.failures = 0;
}

export function startSync(phoneGetter) {
  getPhone = phoneGetter;
  addEventListener('online', () => {
    if (state.outcome === 'network') state.outcome = null;
    state.failures = 0;
    emit(false);
    syncNow();
  });
  addEventListener('offline', () => {
    clearTimeout(timer);
    emit(false);
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && navigator.onLine && !running && !waitingOnServer()) {
      const last = getPhone()?.lastSyncAt() || 0;
      if (Date.now() - last > 20_000) syncNow();
    }
  });
}
