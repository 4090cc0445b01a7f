// 网格通: boot, routing, the status bar and banners, sign-in and 我的.

import { clearAll, flush, openDb, pendingPhotos, persist, photoLocationOn, setPhotoLocation, writesBlocked } from './db.js';
import * as sync from './sync.js';
import { S, explain, me, pendingRecords, territoryName, topbar } from './core.js';
import { ROLE, ask, field, h, hhmm, toast, when } from './ui.js';
import initWasm, { Phone as WasmPhone } from './pkg/gridsync_client.js';

// The WebAssembly first: index.html already started downloading and compiling
// it (window.gsWasm) while these few modules loaded. The screens are imported
// when first opened (lazy() below), so opening one screen loads only its modules;
// the service worker caches every module on install, so they all work offline.
const wasmReady = (async () => {
  let module;
  try {
    module = await window.gsWasm;
  } catch (e) {
    console.warn('streaming compile failed, the glue fetches the WebAssembly itself:', e);
  }
  await initWasm(module ? { module_or_path: module } : undefined);
  return WasmPhone;
})();

export const VERSION = '1.1.0'; // keep in step with VERSION in sw.js

let Phone = null;
let resolveReady;
const ready = new Promise((r) => (resolveReady = r));
let resolveScreens;
/** Settles once every screen's module has been fetched (or failed to be): offline, they open from memory. */
const screens = new Promise((r) => (resolveScreens = r));
window.gridsync = {
  get phone() {
    return S.phone;
  },
  syncNow: sync.syncNow,
  syncState: sync.state,
  ready,
  screens,
  flush,
  writesBlocked,
  version: VERSION,
};

const view = document.getElementById('view');
const statusEl = document.getElementById('status');
const bannersEl = document.getElementById('banners');
const nav = document.getElementById('nav');

// ------------------------------------------------------------------ routing
// A screen in a module loaded when first opened: `import()` needs a literal
// path for the module to be found, so each module has its loader here.
const MODULES = {
  today: () => import('./today.js'),
  promises: () => import('./promises.js'),
  households: () => import('./households.js'),
  visits: () => import('./visits.js'),
  cases: () => import('./cases.js'),
  admin: () => import('./admin.js'), // 管理控制台 (administrators; needs the network, not cached for offline)
};
const lazy = (module, name) => ({ module, name });

// [pattern, screen (a function here, or lazy(module, export)), section for the bottom nav, live (redrawn when sync brings data)]
const ROUTES = [
  [/^today$/, lazy('today', 'todayView'), 'today', true],
  [/^diary$/, lazy('today', 'diaryView'), 'today', true],
  [/^promises$/, lazy('promises', 'promisesView'), 'today', true],
  [/^households$/, lazy('households', 'householdsView'), 'households', true],
  [/^household\/new$/, lazy('households', 'householdForm'), 'households', false],
  [/^household\/([\w-]+)\/edit$/, lazy('households', 'householdForm'), 'households', false],
  [/^household\/([\w-]+)$/, lazy('households', 'householdView'), 'households', true],
  [/^visits$/, lazy('visits', 'visitsView'), 'visits', true],
  [/^visit\/new$/, lazy('visits', 'visitForm'), 'visits', false],
  [/^visit\/([\w-]+)\/edit$/, lazy('visits', 'visitForm'), 'visits', false],
  [/^visit\/([\w-]+)$/, lazy('visits', 'visitView'), 'visits', true],
  [/^cases$/, lazy('cases', 'casesView'), 'cases', true],
  [/^case\/new$/, lazy('cases', 'caseForm'), 'cases', false],
  [/^case\/([\w-]+)\/edit$/, lazy('cases', 'caseForm'), 'cases', false],
  [/^case\/([\w-]+)$/, lazy('cases', 'caseView'), 'cases', true],
  [/^me$/, meView, 'me', true],
  [/^reports$/, reportsScreen, 'me', false],
  [/^admin$/, lazy('admin', 'consoleView'), 'me', false],
  [/^admin\/(\w+)$/, lazy('admin', 'consoleView'), 'me', false],
  [/^password$/, passwordView, 'me', false],
];

let current = null;
let stale = false;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(qs || '')) };
}

function route() {
  if (!S.phone.identity()) return { screen: loginView, section: null, live: false, params: {} };
  const { path, query } = parseHash();
  for (const [re, screen, section, live] of ROUTES) {
    const m = re.exec(path);
    if (m) return { screen, section, live, params: { ...query, id: m[1] } };
  }
  return null;
}

/** The screen function of a route, importing its module the first time. */
async function screenOf(screen) {
  if (typeof screen === 'function') return screen;
  const m = await MODULES[screen.module]();
  return m[screen.name];
}

let renders = 0;

/** Shows the screen the address names (once its module is loaded). */
async function render() {
  const r = route();
  if (!r) return location.replace('#/today');
  const mine = ++renders;
  try {
    r.screen = await screenOf(r.screen);
  } catch (e) {
    console.error(e);
    r.screen = () => h('section', null, h('p.banner.warn', { testid: 'screen-load-failed' }, '页面加载失败：本机没有这个页面的文件。请联网后重新打开网格通。'));
  }
  if (mine !== renders) return; // the person went elsewhere meanwhile
  current = r;
  stale = false;
  draw();
  scrollTo(0, 0);
}

function draw() {
  let node;
  try {
    node = current.screen(current.params);
  } catch (e) {
    console.error(e);
    node = h('section', null, h('p.error', null, '页面出错：' + explain(e)));
  }
  view.replaceChildren(node);
  document.body.classList.toggle('signed-out', !S.phone.identity());
  // An administrator over a sub-district or more keeps no records here: no record tabs.
  const online = !!S.phone.identity() && !S.phone.keepsReplica();
  for (const a of nav.querySelectorAll('[data-section=households],[data-section=visits],[data-section=cases]')) a.hidden = online;
  for (const a of nav.querySelectorAll('a')) a.setAttribute('aria-current', a.dataset.section === current.section ? 'page' : 'false');
  renderStatus();
}

/** Redraws the screen with new data, unless the person is typing in it. */
function refreshLive() {
  if (!current || !current.live) return;
  const active = document.activeElement;
  if (view.querySelector('[data-dirty]') || (active && view.contains(active) && /INPUT|TEXTAREA|SELECT/.test(active.tagName))) {
    stale = true;
    return;
  }
  const y = scrollY;
  draw();
  scrollTo(0, y);
}
S.refresh = () => {
  const y = scrollY;
  draw();
  scrollTo(0, y);
};

view.addEventListener('input', (e) => {
  if (e.target.type !== 'search') e.target.dataset.dirty = '1';
});
view.addEventListener('focusout', () => setTimeout(() => stale && refreshLive(), 0));

// --------------------------------------------------------------- status bar
function renderStatus() {
  const id = S.phone && S.phone.identity();
  statusEl.hidden = !id;
  if (!id) {
    bannersEl.replaceChildren();
    return;
  }
  const st = sync.state;
  const online = sync.isOnline();
  const pending = pendingRecords();
  const photos = pendingPhotos();
  const last = S.phone.lastSyncAt();
  const label = st.outcome === 'auth' ? '需重新登录' : !online ? '离线' : st.outcome === 'error' ? '在线 · 同步出错' : '在线';
  // Offline is the whole bar's colour, not a dot: the person sees it at a glance.
  statusEl.classList.toggle('offline', !online && st.outcome !== 'auth');
  statusEl.classList.toggle('signed-off', st.outcome === 'auth');
  const done = syncDone && syncDone.until > Date.now() && online ? syncDone : null;
  statusEl.replaceChildren(
    h(
      'div.st-text',
      null,
      h(
        'div.st-line',
        null,
        h('span', { testid: 'status-online', class: `dot ${online && st.outcome !== 'auth' ? 'on' : 'off'}`, 'data-online': String(online) }, label),
        h(
          'span',
          { testid: 'status-pending', class: pending || photos ? 'st-pending' : 'st-done', 'data-count': pending, 'data-photos': photos },
          // The bar is narrow: photos on this line only when no record waits (else on the line below).
          pending ? `${pending} 条记录待同步` : photos ? `${photos} 张照片待同步` : '全部已同步',
        ),
      ),
      done
        ? h('div.st-sub.st-synced', { testid: 'sync-done', 'data-count': done.count, role: 'status' }, `✓ ${done.text}`)
        : pending && photos
          ? h('div.st-sub', { testid: 'status-photos' }, `另有 ${photos} 张照片${!online && st.outcome !== 'auth' ? '，联网后自动同步' : '待同步'}`)
          : h('div.st-sub', { testid: 'status-last-sync' }, !online && st.outcome !== 'auth' ? '记录存在本机，联网后自动同步' : last ? `上次同步 ${lastText(last)}` : '尚未同步'),
    ),
    h(
      'button.sync',
      { type: 'button', testid: 'sync-now', disabled: st.syncing, onclick: onSyncNow },
      st.syncing ? '同步中…' : '立即同步',
    ),
  );
  renderBanners(st);
  renderBadge();
}

/** "2 条记录、1 张照片待同步", or '' when nothing waits. */
function pendingWords(records, photos) {
  const parts = [records ? `${records} 条记录` : '', photos ? `${photos} 张照片` : ''].filter(Boolean);
  return parts.length ? `${parts.join('、')}待同步` : '';
}

/** The 今日 tab's badge: how many records others changed since the person last looked. */
// today.js is loaded after the first screen is drawn (or with 今日): until then no badge.
let today = null;
function loadToday() {
  return MODULES.today().then((m) => {
    today = m;
    return m;
  });
}

function renderBadge() {
  const badge = document.getElementById('today-badge');
  if (!badge || !today) return;
  let n = 0;
  try {
    n = today.badgeCount(!!current && current.name === 'todayView');
  } catch (e) {
    console.error(e);
  }
  badge.hidden = !n;
  badge.textContent = n > 99 ? '99+' : String(n);
  badge.setAttribute('aria-label', `${n} 条新变化`);
}

// ------------------------------------------- "已同步 3 条" after a sync
// What one sync sent (records no longer waiting) and brought (records others
// changed that it received), said for a few seconds in the status bar.
let syncStart = null; // {pending, at} while a sync runs
let syncDone = null; // {count, text, until}
const SYNC_DONE_MS = 6000;

function broughtSince(at) {
  try {
    if (S.phone.changedSince) return S.phone.changedSince(at).length;
  } catch {}
  return 0; // the sync report's own count includes the echo of this phone's records
}

function trackSync() {
  const st = sync.state;
  if (!S.phone.identity()) return;
  if (st.syncing) {
    if (!syncStart) syncStart = { pending: pendingRecords(), at: Date.now() };
    return;
  }
  if (!syncStart) return;
  const start = syncStart;
  syncStart = null;
  if (st.outcome !== 'ok') return;
  if (today) today.afterSync();
  else loadToday().then((m) => m.afterSync(), (e) => console.error(e));
  const sent = Math.max(0, start.pending - pendingRecords());
  const brought = broughtSince(start.at);
  if (!sent && !brought) return;
  const parts = [sent ? `上传 ${sent} 条` : '', brought ? `收到 ${brought} 条` : ''].filter(Boolean).join('，');
  syncDone = { count: sent + brought, text: `已同步 ${sent + brought} 条（${parts}）`, until: Date.now() + SYNC_DONE_MS };
  setTimeout(renderStatus, SYNC_DONE_MS + 50);
}

function lastText(ms) {
  return new Date(ms).toDateString() === new Date().toDateString() ? hhmm(ms) : when(ms);
}

async function onSyncNow() {
  if (!navigator.onLine) toast('当前没有网络，正在尝试…', 'warn');
  const asked = Date.now();
  await sync.syncNow();
  const st = sync.state;
  const done = syncDone && syncDone.until - SYNC_DONE_MS >= asked ? syncDone : null;
  if (st.outcome === 'ok') toast(pendingRecords() ? `${pendingRecords()} 条记录未同步，稍后重试` : done ? `已同步 ${done.count} 条` : '已是最新，没有需要同步的记录');
  else if (st.outcome === 'network') toast('网络不可用，联网后会自动同步', 'warn');
  else if (st.outcome !== 'auth') toast('同步失败：' + st.message, 'error');
}

function renderBanners(st) {
  const out = [];
  if (st.outcome === 'auth') {
    out.push(
      h(
        'div.banner.danger',
        { testid: 'auth-banner' },
        h('div', null, st.message),
        pendingNote(),
        h('button.btn', { type: 'button', testid: 'auth-signin', onclick: () => showLogin(true) }, '重新登录'),
      ),
    );
  } else if (st.outcome === 'error' && st.message && !dbError) {
    out.push(h('div.banner.warn', { testid: 'sync-error' }, `同步出错：${st.message}。记录仍保存在本机，稍后会自动重试。`));
  }
  if (dbError) out.push(h('div.banner.danger', { testid: 'db-error', role: 'alert' }, dbError));
  let rejections = [];
  try {
    rejections = S.phone.rejections();
  } catch {}
  if (rejections.length) {
    out.push(
      h(
        'div.banner.danger',
        { testid: 'rejection-banner', role: 'alert' },
        h('div.banner-title', null, `${rejections.length} 条记录未被服务器接受`),
        h('div.small', null, '未被接受的修改已撤销，如有需要请重新办理。'),
        rejections.map((r) =>
          h(
            'div.rejection',
            { testid: 'rejection-item', 'data-doc': r.doc },
            h('div', null, h('b', null, r.message)),
            h('div', null, r.summary),
            r.kept ? h('div.small', { testid: 'rejection-kept' }, `已保留 ${r.kept}，将重新上传。`) : null,
            r.detail ? h('details.small', null, h('summary', null, '技术详情'), r.detail) : null,
            h(
              'button.btn.small',
              {
                type: 'button',
                testid: 'rejection-dismiss',
                onclick: async () => {
                  try {
                    S.phone.dismissRejection(r.doc);
                    await flush();
                  } catch (e) {
                    toast(explain(e), 'error');
                  }
                  renderStatus();
                },
              },
              '知道了',
            ),
          ),
        ),
      ),
    );
  }
  // Records carry the phone's time: a clock hours off makes every new record's time wrong.
  const skew = st.clockSkew || 0;
  if (Math.abs(skew) > 10 * 60_000) {
    const off = Math.abs(skew) >= 3_600_000 ? `${Math.round(Math.abs(skew) / 3_600_000)} 小时` : `${Math.round(Math.abs(skew) / 60_000)} 分钟`;
    out.push(
      h(
        'div.banner.warn',
        { testid: 'clock-banner' },
        `手机时间不准：比北京时间${skew > 0 ? '快' : '慢'}约 ${off}，新记录的时间会跟着出错。请在手机“设置 > 日期和时间”中打开“自动设置时间”。`,
      ),
    );
  }
  if (updateReady) {
    out.push(h('button.banner.info', { type: 'button', testid: 'update-banner', onclick: () => location.reload() }, '新版本已就绪，点此刷新'));
  }
  bannersEl.replaceChildren(...out);
}

/** What re-signing-in means for changes not yet synced (they carry the old device's identity). */
function pendingNote() {
  const n = pendingRecords();
  if (!n) return null;
  return h(
    'div',
    { testid: 'pending-note' },
    sync.state.code === 'person_disabled'
      ? `本机还有 ${n} 条记录未同步，仍保存在本机。请联系管理员恢复账号，再重新登录提交。`
      : `本机还有 ${n} 条记录未同步，仍保存在本机。用本人账号重新登录后会自动提交，不会丢失。`,
  );
}

let dbError = '';
addEventListener('gs-db-error', (e) => {
  // db.js has already taken the unsaved edits back out of memory.
  // The screen is not redrawn: a form keeps what was typed, to save again.
  dbError = (e.detail && e.detail.kind === 'storage' && e.detail.message) || `本机存储写入失败：${explain(e.detail)}`;
  renderStatus();
});
addEventListener('gs-db-ok', () => {
  dbError = '';
  renderStatus();
});

// ------------------------------------------------------------------ sign-in
let forceLogin = false;

function showLogin(again) {
  forceLogin = again;
  current = { screen: loginView, section: null, live: false, params: {} };
  draw();
}

function loginView() {
  const old = S.phone.identity();
  const username = h('input.input', { autocomplete: 'username', autocapitalize: 'off', spellcheck: 'false', testid: 'login-username', required: true });
  const password = h('input.input', { type: 'password', autocomplete: 'current-password', testid: 'login-password', required: true });
  const device = h('input.input', { value: localStorage.getItem('gs-device-name') || '网格员手机', testid: 'login-device' });
  const error = h('p.error', { testid: 'login-error', role: 'alert' });
  const submit = h('button.btn.primary.big', { type: 'submit', testid: 'login-submit' }, '登录');
  const onSubmit = async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!username.value.trim() || !password.value) return (error.textContent = '请输入用户名和密码');
    submit.disabled = true;
    submit.textContent = '正在登录…';
    try {
      await signIn(username.value.trim(), password.value, device.value.trim() || '网格员手机');
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
      submit.textContent = '登录';
    }
  };
  return h(
    'form.login',
    { onsubmit: onSubmit },
    h('div.brand', null, h('img', { src: 'icons/icon.svg', alt: '', width: 72, height: 72 }), h('h1', null, '网格通'), h('p', null, '社区网格化管理 · 离线可用')),
    forceLogin && old ? h('div.banner.warn', null, `请以“${old.name}”重新登录。`, pendingNote()) : null,
    field('用户名', username),
    field('密码', password),
    field('设备名称', device, '便于管理员识别这部手机'),
    error,
    submit,
    h('p.banner.warn', { testid: 'login-offline', hidden: navigator.onLine }, '登录需要网络连接。请到有信号的地方再试。'),
    forceLogin ? h('button.btn.wide', { type: 'button', onclick: () => ((forceLogin = false), render()) }, '取消') : null,
  );
}

/** A Chinese sentence for a refused sign-in or password change. */
async function refusal(resp, fallback) {
  let body = {};
  try {
    body = await resp.json();
  } catch {}
  const wait = Number(resp.headers.get('Retry-After')) || body.retry_after_s || 0;
  if (resp.status === 429 && body.message) return body.message; // 登录失败次数过多，请 N 分钟后再试
  if (resp.status === 503) return `服务器正忙，请${wait ? ` ${wait} 秒后` : '稍后'}再试`;
  if (body.error === 'person_disabled') return '此账号已被停用，请联系管理员';
  if (resp.status === 401 && body.error === 'unauthorized') return fallback;
  return body.message || `${fallback}（${resp.status}）`;
}

async function signIn(username, password, deviceName) {
  const old = S.phone.identity();
  let resp;
  try {
    resp = await fetch('/v1/auth/sign-in', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      // Signing in again on this phone replaces its previous device (if it was this person's).
      body: JSON.stringify({ username, password, device_name: deviceName, ...(old ? { replaces: old.device } : {}) }),
      cache: 'no-store',
    });
  } catch {
    throw new Error('无法连接服务器，请检查网络后重试');
  }
  if (!resp.ok) throw new Error(await refusal(resp, resp.status === 401 ? '用户名或密码错误' : '登录失败'));
  const reg = await resp.json();
  // Another person's unsynced work is deleted only if the person says so.
  const unsynced = old && old.person !== reg.person ? pendingRecords() : 0;
  if (
    unsynced &&
    !(await ask({
      title: '换账号登录？',
      text: `本机还有 ${unsynced} 条“${old.name}”的记录没有同步到服务器。用其他账号登录会把它们从本机永久删除。建议取消，先用“${old.name}”的账号登录并同步。`,
      ok: '删除并登录',
      danger: true,
    }))
  ) {
    throw new Error(`已取消。请用“${old.name}”的账号登录，同步后再换账号。`);
  }
  // Another person's records never stay on the phone.
  if ((old && old.person !== reg.person) || (!old && S.phone.records().length)) await wipe();
  S.phone.register(reg);
  await flush();
  localStorage.setItem('gs-device-name', deviceName);
  if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
  forceLogin = false;
  sync.resetState();
  location.replace('#/today');
  render();
  toast(`欢迎，${reg.name}`);
  await sync.syncNow();
}

/** Deletes every local record and starts an empty replica. */
async function wipe() {
  try {
    S.phone.free();
  } catch {}
  await clearAll();
  S.phone = Phone.open([], persist);
}

// ------------------------------------------------------ 统计 (administrators)
// Loaded when opened: the page needs the network anyway.
function reportsScreen(params) {
  const box = h('section', { testid: 'reports-loading' }, h('p.muted', null, '正在打开统计…'));
  import('./reports.js').then(
    (m) => box.replaceWith(m.reportsView(params)),
    () => box.replaceChildren(h('p.banner.warn', { testid: 'reports-offline' }, '统计与导出需要网络连接，请联网后再打开。')),
  );
  return box;
}

// ----------------------------------------------------------------------- 我的
function meView() {
  const id = me();
  const pending = pendingRecords();
  const persisted = h('dd', { testid: 'me-storage' }, '…');
  storageWords(persisted, pending);
  const counts = ['household', 'visit_log', 'case'].map((k) => S.phone.records(k).length);
  return h(
    'section',
    null,
    h('div.head', null, h('h1', null, '我的')),
    h(
      'div.card',
      null,
      h('div.big', { testid: 'me-name' }, id.name),
      h('dl.facts', null,
        h('dt', null, '角色'), h('dd', { testid: 'me-role' }, ROLE[id.role] || id.role),
        h('dt', null, '负责区域'), h('dd', null, h('div', { testid: 'me-territory-name' }, territoryName(id.territory)), h('div.muted.small', { testid: 'me-territory' }, id.territory)),
      ),
    ),
    h(
      'div.card',
      null,
      h('dl.facts', null,
        h('dt', null, '本机数据'), h('dd', null, `住户 ${counts[0]} · 走访 ${counts[1]} · 事件 ${counts[2]}`),
        h('dt', null, '待同步'), h('dd', { testid: 'me-pending' }, pendingWords(pending, pendingPhotos()).replace(/待同步$/, '') || '没有，全部已同步'),
        h('dt', null, '数据保存'), persisted,
        h('dt', null, '版本'), h('dd', { testid: 'app-version' }, `网格通 ${VERSION}`),
      ),
    ),
    h(
      'label.card.setting',
      { testid: 'me-photo-location' },
      h('input', { type: 'checkbox', checked: photoLocationOn(), onchange: (e) => setPhotoLocation(e.target.checked) }),
      ' 照片记录位置',
      h('div.muted.small', null, '打开后，新拍的照片会记下拍摄地点（GPS）。照片本身不带位置等信息。'),
    ),
    id.role === 'administrator' ? h('a.btn.wide', { href: '#/admin', testid: 'me-console' }, '管理控制台') : null,
    id.role === 'administrator' ? h('a.btn.wide', { href: '#/reports', testid: 'me-reports' }, '统计与导出') : null,
    h('a.btn.wide', { href: '#/password', testid: 'me-password' }, '修改密码'),
    h('button.btn.wide.danger', { type: 'button', testid: 'signout', onclick: signOut }, '退出登录'),
    h('p.muted.small', null, '退出登录会清除本机保存的住户和走访数据。'),
  );
}

/**
 * Whether the browser may clear this phone's data by itself, in a grid
 * manager's words (the Storage API's "persisted"), with a way to ask for it.
 */
function storageWords(dd, pending) {
  const say = (p) => {
    dd.dataset.persisted = String(p);
    if (p) return dd.replaceChildren('受保护：浏览器不会自行清除本机的记录。');
    dd.replaceChildren(
      h('div', null, '未受保护：手机空间不足时，浏览器可能清除本机的记录。'),
      h('div.muted.small', null, pending ? `还有 ${pending} 条记录未同步，清除后会丢失，请尽快联网同步。` : '已同步的记录在服务器上，清除后重新登录即可下载。'),
      navigator.storage && navigator.storage.persist
        ? h(
            'button.btn.small',
            {
              type: 'button',
              testid: 'me-storage-persist',
              onclick: async () => {
                const ok = await navigator.storage.persist().catch(() => false);
                if (ok) say(true);
                else toast('浏览器暂未同意。把网格通“添加到主屏幕”后再试。', 'warn');
              },
            },
            '申请保护',
          )
        : null,
    );
  };
  if (navigator.storage && navigator.storage.persisted) navigator.storage.persisted().then(say, () => say(false));
  else dd.replaceChildren('无法确定：此浏览器不告诉网页数据是否会被清除，请及时同步。');
}

// ------------------------------------------------------------ 修改密码
function passwordView() {
  const old = h('input.input', { type: 'password', autocomplete: 'current-password', testid: 'password-old', required: true });
  const next = h('input.input', { type: 'password', autocomplete: 'new-password', testid: 'password-new', required: true, minlength: 8 });
  const again = h('input.input', { type: 'password', autocomplete: 'new-password', testid: 'password-again', required: true });
  const error = h('p.error', { testid: 'password-error', role: 'alert' });
  const submit = h('button.btn.primary.big', { type: 'submit', testid: 'password-submit' }, '修改密码');
  const onSubmit = async (e) => {
    e.preventDefault();
    error.textContent = '';
    if ([...next.value].length < 8) return (error.textContent = '新密码至少需要 8 个字符');
    if (next.value !== again.value) return (error.textContent = '两次输入的新密码不一致');
    if (!navigator.onLine) return (error.textContent = '修改密码需要网络连接，请到有信号的地方再试');
    submit.disabled = true;
    submit.textContent = '正在修改…';
    try {
      let resp;
      try {
        resp = await fetch('/v1/auth/password', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${me().token}` },
          body: JSON.stringify({ old_password: old.value, new_password: next.value }),
          cache: 'no-store',
        });
      } catch {
        throw new Error('无法连接服务器，请检查网络后重试');
      }
      if (!resp.ok) throw new Error(await refusal(resp, resp.status === 403 ? '原密码不正确' : '修改失败'));
      const body = await resp.json();
      toast(body.message || '密码已修改');
      location.replace('#/me');
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
      submit.textContent = '修改密码';
    }
  };
  return h(
    'section',
    null,
    topbar('修改密码', '#/me'),
    h(
      'form',
      { onsubmit: onSubmit, testid: 'password-form' },
      field('原密码', old),
      field('新密码', next, '至少 8 个字符'),
      field('再次输入新密码', again),
      h('p.muted.small', null, '修改后，您在其他手机上的登录将失效，需要用新密码重新登录。'),
      error,
      submit,
    ),
  );
}

async function signOut() {
  let n = pendingRecords() + pendingPhotos();
  if (n && navigator.onLine) {
    await sync.syncNow();
    await sync.uploadPhotos();
    n = pendingRecords() + pendingPhotos();
  }
  const ok = await ask({
    title: '退出登录',
    text: n
      ? `还有${pendingWords(pendingRecords(), pendingPhotos()).replace(/待同步$/, '')}没有同步到服务器，退出后将永久丢失！建议先到有信号的地方同步。`
      : '退出后本机的网格数据将被清除，下次登录时重新下载。',
    ok: n ? '仍然退出' : '退出登录',
    danger: true,
  });
  if (!ok) return;
  await wipe();
  sync.resetState();
  location.replace('#/');
  render();
}

// --------------------------------------------------------------------- boot
let updateReady = false;

function fatal(text, detail) {
  view.replaceChildren(
    h(
      'section.fatal',
      null,
      h('h1', null, '网格通无法启动'),
      h('p', null, text),
      detail ? h('p.muted.small', null, detail) : null,
      h('button.btn.primary.big', { type: 'button', onclick: () => location.reload() }, '重试'),
    ),
  );
  resolveReady();
  resolveScreens();
  registerWorker(); // a fixed version can still arrive through it
}

async function boot() {
  // Started together, not one after the other: the stored records, and the
  // module of the screen the address names (its import is remembered).
  const stored = openDb();
  stored.catch(() => {}); // reported below, once the WebAssembly is there
  const first = ROUTES.find(([re]) => re.test(parseHash().path));
  if (first && typeof first[1] !== 'function') MODULES[first[1].module]().catch(() => {}); // render() says if it failed
  try {
    Phone = await wasmReady;
    performance.mark('gs-wasm-ready');
  } catch (e) {
    console.error(e);
    return fatal('应用组件加载失败。首次使用请在有网络时打开。', String(e && e.message));
  }
  try {
    const entries = await stored;
    performance.mark('gs-db-read');
    S.phone = Phone.open(entries, persist);
    performance.mark('gs-replica-open');
  } catch (e) {
    console.error(e);
    return fatal('读取本机数据失败。', String(e && e.message));
  }
  sync.startSync(() => S.phone);
  sync.onChange((dataChanged) => {
    trackSync();
    renderStatus();
    if (dataChanged) refreshLive();
  });
  const onNet = () => {
    renderStatus();
    const note = document.querySelector('[data-testid=login-offline]');
    if (note) note.hidden = navigator.onLine;
  };
  addEventListener('online', onNet);
  addEventListener('offline', onNet);
  addEventListener('hashchange', render);
  nav.hidden = false;
  await render();
  performance.mark('gs-rendered');
  resolveReady();
  if (S.phone.identity()) sync.syncNow();
  // After the first screen is on the glass: the 今日 badge's module, the
  // service worker, and every other screen's module — once imported a module
  // stays in memory, so the screens open even if the signal goes before the
  // service worker has finished installing (a first visit, then a basement).
  setTimeout(() => {
    loadToday().then(renderBadge, (e) => console.error(e));
    registerWorker();
    const loads = Object.values(MODULES).map((load) => load().catch((e) => console.warn('screen module:', e)));
    Promise.allSettled(loads).then(resolveScreens);
  }, 300);
}

/**
 * The service worker is registered once the app is running: its install
 * then fills its cache from the HTTP cache the page has just filled (see
 * sw.js), instead of downloading the WebAssembly a second time beside the page.
 */
function registerWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('sw.js').catch((e) => console.warn('service worker:', e));
}

if ('serviceWorker' in navigator) {
  const hadController = !!navigator.serviceWorker.controller;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (!hadController) return;
    updateReady = true;
    renderStatus();
  });
}

boot();
