// State and helpers the screens share: the replica, navigation, saving.

import { flush, setReplica } from './db.js';
import { syncSoon } from './sync.js';
import { h, toast } from './ui.js';

export const S = { phone: null, refresh: () => {} };

// After a write failed, memory gives back what the disk does not hold (db.js).
setReplica({
  reload: (entries) => S.phone && S.phone.reload(entries),
  failed: (batch) => S.phone && S.phone.writeFailed(batch),
  done: (batch) => S.phone && S.phone.writeDone(batch),
});

export const me = () => S.phone.identity();
export const records = (kind) => S.phone.records(kind);
export const rec = (id) => (id ? S.phone.record(id) : null);
export const isGridPerson = () => me().territory.split('/').length === 5;

export function go(hash) {
  location.hash = hash;
}

let inApp = 0;
addEventListener('hashchange', () => inApp++);
/** Back to where the person came from, or to `fallback` when opened directly. */
export function back(fallback) {
  if (inApp > 0 && history.length > 1) history.back();
  else go(fallback);
}

export function topbar(title, fallback, ...extra) {
  return h(
    'div.topbar',
    null,
    h('button.back', { type: 'button', testid: 'back', 'aria-label': '返回', onclick: () => back(fallback) }, '‹ 返回'),
    h('h1', null, title),
    ...extra,
  );
}

export function householdName(l) {
  const f = l.record.fields;
  return f.head || f.address || '（未填写户主）';
}

const CODES = {
  not_permitted: '您的角色无权进行此项操作',
  outside_territory: '记录不在您负责的网格范围内',
  fixed_field: '记录的类型、网格、创建人和创建时间不能修改',
  status_backwards: '事件状态不能倒退',
  history_rewritten: '已有的跟进和处理记录不能修改',
  invalid_record: '内容不完整或格式有误',
  too_large: '内容过大',
};

/** A Chinese sentence for an error thrown by the replica. */
export function explain(e) {
  const m = String((e && e.message) || e);
  const code = m.split(':')[0];
  if (CODES[code]) return `${CODES[code]}（${m.slice(code.length + 1).trim()}）`;
  if (/not signed in/.test(m)) return '尚未登录';
  if (/choose a grid/.test(m)) return '请选择所属网格';
  if (/no record/.test(m)) return '本机没有这条记录';
  return m;
}

/** Runs a replica edit; shows its error and returns undefined if it failed. */
export function attempt(fn) {
  try {
    return { value: fn() };
  } catch (e) {
    console.error(e);
    const m = explain(e);
    toast(/记录未保存/.test(m) ? m : '操作失败：' + m, 'error'); // a storage failure says itself what happened
    return null;
  }
}

/** Waits until the edit is on disk, then says so and syncs soon. */
export async function saved(text = '已保存') {
  try {
    await flush();
  } catch (e) {
    toast(e.kind === 'storage' ? e.message : '保存失败：' + explain(e), 'error');
    return false;
  }
  syncSoon();
  toast(text);
  return true;
}

/** The grids this person can write in, as seen in their records (for people above a grid). */
export function knownGrids() {
  const grids = new Set();
  for (const l of records('household')) grids.add(l.record.meta.grid);
  return [...grids].sort();
}

/** A grid <select> for people above a grid (supervisors); null for field staff. */
export function gridPicker(testid) {
  if (isGridPerson()) return null;
  const sel = h('select.input', { testid }, h('option', { value: '' }, '请选择网格'));
  for (const g of knownGrids()) sel.append(h('option', { value: g }, g));
  return sel;
}

/** The grid for a new record: null (my own) for field staff, else the household's or the picked one. */
export function gridOf(householdId, picker) {
  if (isGridPerson()) return null;
  const hh = rec(householdId);
  if (hh) return hh.record.meta.grid;
  return (picker && picker.value) || undefined;
}

/** A <select> of the households on this phone. */
export function householdSelect(selected, testid, emptyLabel = '（不针对具体住户）') {
  const sel = h('select.input', { testid }, h('option', { value: '' }, emptyLabel));
  for (const l of records('household')) {
    sel.append(h('option', { value: l.id, selected: l.id === selected }, `${householdName(l)}　${l.record.fields.address}`));
  }
  return sel;
}

/** Case steps still waiting for work (before 已办结). */
export const OPEN_STATUSES = ['reported', 'accepted', 'assigned', 'in_progress'];

export function isOverdue(l) {
  const due = l.record.fields.due_at;
  return due && due < Date.now() && !['resolved', 'verified', 'closed'].includes(l.status);
}

/** A record that still counts: not voided (作废). */
export const live = (l) => !l.voided;

// The one place names are worded (every screen imports these): the wasm
// bindings answer from the directory the phone keeps; these add the words for
// oneself and for what the directory does not list.

/** A person's name (never an id): the directory's name, with （我） for oneself; 其他人员 when not listed. */
export function personName(id) {
  if (!id) return '—';
  let n = null;
  try {
    n = S.phone.knownPersonName(id);
  } catch {}
  const self = me();
  if (self && id === self.person) return `${n || self.name}（我）`;
  return n || '其他人员';
}

/** A territory's name (never a path code); an unlisted one is named by its nearest listed parent. */
export function territoryName(path) {
  if (!path) return '—';
  const known = (p) => {
    try {
      return S.phone.knownTerritoryName(p) || null;
    } catch {
      return null;
    }
  };
  const n = known(path);
  if (n) return n;
  const parts = path.split('/');
  for (let i = parts.length - 1; i > 0; i--) {
    const up = known(parts.slice(0, i).join('/'));
    if (up) return `${up}下属${['', '区县', '街道', '社区', '网格'][parts.length - 1] || '区域'}`;
  }
  return '未知区域';
}

/** The person a case was handed to (交办), from its status log; null when none. */
export function assigneeOf(l) {
  if (l.assignee !== undefined) return l.assignee || null;
  let best = null;
  for (const e of l.record.status_log || []) if (e.assignee && (!best || e.at >= best.at)) best = e;
  return best ? best.assignee : null;
}

/** Records with changes waiting for the server (a record edited three times counts once). */
export function pendingRecords() {
  return S.phone.pendingRecords ? S.phone.pendingRecords() : S.phone.pendingChanges();
}

export function empty(text) {
  return h('p.empty', null, text);
}
