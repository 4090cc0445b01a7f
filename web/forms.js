// What every record form shares: the record id fixed when the form opens (a
// repeated submit updates that record), a save that runs once at a time,
// drafts kept per form and record id across tabs, reloads and restarts, the
// question before leaving unsaved input, the household picker, and people
// and places in words.

import { S, me, rec, records, householdName, personName, territoryName as placeName } from './core.js';
import { ROLE, ask, h, when } from './ui.js';

// ------------------------------------------------------------ record ids

/** A new record's id, fixed when its form opens (so a second submit cannot make a second record). */
export function newRecordId() {
  try {
    if (typeof S.phone.newId === 'function') return S.phone.newId();
  } catch (e) {
    console.error(e);
  }
  // An older replica: a local id keeps the draft; the replica names the record when it is made.
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

/**
 * Creates the record `target.id` names, or updates it if it exists already (a
 * repeated submit). `create` is `{type, ...fields}`; `grid` as phone.create takes it.
 * Returns the record's id; throws what the replica throws.
 */
export function saveRecord(target, create, grid) {
  const existing = target.id && S.phone.record(target.id);
  const { type, ...fields } = create;
  if (existing) {
    // A promise's content is fixed once made: saving it again changes nothing.
    if (type !== 'promise') S.phone.update(target.id, fields, Date.now());
    return target.id;
  }
  target.id = target.id && S.phone.newId ? S.phone.create(create, grid, Date.now(), target.id) : S.phone.create(create, grid, Date.now());
  return target.id;
}

/**
 * A click/submit handler that runs `fn` once at a time: the button is
 * disabled (and says `busyText`) from the first tap until `fn` settles, so a
 * double tap submits once.
 */
export function once(button, fn, busyText = '正在保存…') {
  let busy = false;
  return async (e) => {
    if (e && e.preventDefault) e.preventDefault();
    if (busy) return;
    busy = true;
    const text = button.textContent;
    button.disabled = true;
    button.textContent = busyText;
    try {
      await fn(e);
    } finally {
      busy = false;
      button.disabled = false;
      button.textContent = text;
    }
  };
}

// ------------------------------------------------------------------ drafts
// A draft is kept in localStorage under gs-draft/<person>/<form>/<record id>:
// {form, id, mode: 'new' | 'edit', at, values, ctx}. It is written on every
// edit of the form and dropped when the form is saved or the person discards it.

const PREFIX = 'gs-draft/';
const keyOf = (form, id) => `${PREFIX}${me().person}/${form}/${id}`;

function readDraft(key) {
  try {
    const d = JSON.parse(localStorage.getItem(key));
    return d && d.values ? d : null;
  } catch {
    return null;
  }
}

/** The draft of `form` for record `id`, or null. */
export function loadDraft(form, id) {
  return id ? readDraft(keyOf(form, id)) : null;
}

export function dropDraft(form, id) {
  try {
    localStorage.removeItem(keyOf(form, id));
  } catch {}
}

function writeDraft(d) {
  try {
    localStorage.setItem(keyOf(d.form, d.id), JSON.stringify(d));
  } catch (e) {
    console.warn('draft not kept:', e); // a full phone: the form itself still holds the input
  }
}

/**
 * Drafts of `form` ('visit', 'case', 'household', 'promise'...), newest first,
 * passing `keep(draft)`. A new record's draft whose record exists was saved
 * (the app closed before the draft was dropped): it is dropped here.
 */
export function draftsOf(form, keep = () => true) {
  if (!me()) return [];
  const prefix = `${PREFIX}${me().person}/${form}/`;
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith(prefix)) continue;
    const d = readDraft(key);
    if (!d) continue;
    if (d.mode === 'new' && S.phone.record(d.id)) {
      localStorage.removeItem(key);
      i--;
      continue;
    }
    if (keep(d)) out.push(d);
  }
  return out.sort((a, b) => b.at - a.at);
}

const trackers = new Set();

/** The first form on screen with unsaved input, if any. */
function unsaved() {
  for (const t of trackers) {
    if (!t.form.isConnected) trackers.delete(t);
    else if (t.dirty()) return t;
  }
  return null;
}

/**
 * Keeps the input of `form` as a draft while it differs from what the form
 * opened with. `read()` returns the form's values; `target.id` is the record
 * id (fixed when the form opened). `restored` marks a form opened from a draft
 * (unsaved until saved). Returns {dirty(), saved()}: call saved() once the
 * record is on disk.
 */
export function track(form, { name, mode, target, read, ctx = null, restored = false, label = '填写的内容' }) {
  const baseline = JSON.stringify(read());
  let left = false;
  const written = new Set([target.id]); // the ids its drafts were kept under
  const t = {
    form,
    label,
    dirty: () => !left && (restored || JSON.stringify(read()) !== baseline),
    keep() {
      if (left || !target.id) return;
      const values = read();
      if (!restored && JSON.stringify(values) === baseline) dropDraft(name, target.id);
      else {
        written.add(target.id);
        writeDraft({ form: name, id: target.id, mode, at: Date.now(), values, ctx });
      }
    },
    saved() {
      left = true;
      trackers.delete(t);
      for (const id of [...written, target.id]) dropDraft(name, id);
      form.querySelectorAll('[data-dirty]').forEach((x) => delete x.dataset.dirty);
    },
    leave() {
      t.keep();
      left = true;
    },
  };
  const later = () => queueMicrotask(() => t.keep());
  form.addEventListener('input', later);
  form.addEventListener('change', later);
  form.addEventListener('click', later);
  trackers.add(t);
  return t;
}

let passing = false;
// Leaving a form with unsaved input (a tab, a link, 返回) asks first; the
// draft is kept either way.
document.addEventListener(
  'click',
  async (e) => {
    if (passing) return;
    const el = e.target.closest && e.target.closest('a[href^="#"], [data-testid="back"], [data-leaves]');
    if (!el) return;
    const t = unsaved();
    if (!t || (t.form.contains(el) && !el.matches('[data-testid="back"]'))) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    t.keep();
    const go = await ask({
      title: '离开此页？',
      text: `${t.label}还没有保存。已为您存为草稿，回到这里时可以继续编辑。`,
      ok: '离开',
      cancel: '继续填写',
    });
    if (!go) return;
    t.leave();
    passing = true;
    try {
      el.click();
    } finally {
      passing = false;
    }
  },
  true,
);

addEventListener('beforeunload', (e) => {
  const t = unsaved();
  if (!t) return;
  t.keep();
  e.preventDefault();
  e.returnValue = '';
});
// A phone may kill a page in the background without beforeunload.
addEventListener('pagehide', () => {
  for (const t of trackers) if (t.form.isConnected && t.dirty()) t.keep();
});

/**
 * A card offering the drafts `list` (继续编辑 opens `href(draft)`, 放弃草稿
 * drops it); null when there are none. `describe(draft)` says what it is.
 */
export function draftOffer(list, href, describe) {
  if (!list.length) return null;
  const box = h('div.card.drafts', { testid: 'draft-offer', role: 'region', 'aria-label': '未保存的草稿' });
  const paint = () => {
    if (!list.length) return box.remove();
    box.replaceChildren(
      h('div.drafts-title', null, `有 ${list.length} 份未保存的草稿`),
      ...list.map((d) =>
        h(
          'div.draft',
          { testid: 'draft-item', 'data-id': d.id },
          h('div.draft-text', null, h('div.clamp', null, describe(d) || '（空白草稿）'), h('div.muted.small', null, `${when(d.at)} 保存的草稿`)),
          h(
            'div.row',
            null,
            h('a.btn.small.primary', { href: href(d), testid: 'draft-continue', 'data-leaves': '' }, '继续编辑'),
            h(
              'button.btn.small',
              {
                type: 'button',
                testid: 'draft-discard',
                onclick: async () => {
                  if (!(await ask({ title: '放弃这份草稿？', text: '草稿中填写的内容将被删除。', ok: '放弃草稿', danger: true }))) return;
                  dropDraft(d.form, d.id);
                  list = list.filter((x) => x !== d);
                  paint();
                },
              },
              '放弃草稿',
            ),
          ),
        ),
      ),
    );
  };
  paint();
  return box;
}

// --------------------------------------------------------- people, places

// Names are worded in core.js (one definition); the record screens import them from here too.
export { personName, placeName };

/** The directory's people whose territory holds `grid`, field staff first, then by name. */
export function peopleFor(grid) {
  let dir = null;
  try {
    dir = typeof S.phone.directory === 'function' ? S.phone.directory() : null;
  } catch {}
  const people = ((dir && dir.people) || []).filter((p) => p.enabled !== false && (grid === p.territory || grid.startsWith(`${p.territory}/`)));
  const rank = { field_staff: 0, supervisor: 1, administrator: 2 };
  return people.sort((a, b) => (rank[a.role] ?? 3) - (rank[b.role] ?? 3) || a.name.localeCompare(b.name, 'zh-CN'));
}

/** A dialog to pick one of `people`; resolves to a person id or null. */
export function choosePerson(title, text, people) {
  return new Promise((resolve) => {
    let chosen = null;
    const close = (v) => {
      back.remove();
      resolve(v);
    };
    const ok = h('button.btn.primary', { type: 'button', testid: 'dialog-ok', disabled: true, onclick: () => close(chosen) }, '交办');
    const list = h(
      'div.people',
      { role: 'radiogroup' },
      people.map((p) =>
        h(
          'button.chip.person',
          {
            type: 'button',
            role: 'radio',
            'aria-checked': 'false',
            testid: 'assignee-option',
            'data-id': p.id,
            onclick: (e) => {
              chosen = p.id;
              for (const b of list.children) b.setAttribute('aria-checked', b === e.currentTarget ? 'true' : 'false');
              ok.disabled = false;
            },
          },
          h('b', null, p.name),
          h('span.muted', null, ` ${ROLE[p.role] || ''} · ${placeName(p.territory)}`),
        ),
      ),
    );
    const back = h(
      'div.modal-back',
      { onclick: (e) => e.target === back && close(null) },
      h(
        'div.modal',
        { role: 'dialog', 'aria-modal': 'true', testid: 'dialog' },
        h('h2', null, title),
        text && h('p', null, text),
        people.length ? list : h('p.warn', null, '本机还没有这个网格的人员名单。请联网同步后再交办。'),
        h('div.row', null, h('button.btn', { type: 'button', testid: 'dialog-cancel', onclick: () => close(null) }, '取消'), ok),
      ),
    );
    document.body.append(back);
  });
}

// ----------------------------------------------------- voiding, conflicts

/** True if this person may void the record: its author, or a supervisor/administrator. */
export function mayVoid(l) {
  const self = me();
  return !!self && (l.record.meta.creator === self.person || self.role !== 'field_staff');
}

/** A record's void, or null (`voided` on the listed record). */
export function voidOf(l) {
  if (!l) return null;
  if (l.voided !== undefined) return l.voided || null;
  const v = (l.record && l.record.voids) || [];
  return v.length ? [...v].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))[0] : null;
}

/** The 已作废 notice for a voided record, or null. */
export function voidedNotice(l) {
  const v = voidOf(l);
  if (!v) return null;
  return h(
    'div.voided',
    { testid: 'voided-notice', role: 'note' },
    h('div.voided-title', null, '已作废'),
    h('div', { testid: 'voided-reason' }, `原因：${v.reason}`),
    h('div.small', { testid: 'voided-by' }, `${personName(v.by)} 作废于 ${when(v.at)}`),
  );
}

/** The 作废 button for a record page (null if voided or not allowed); `done()` after voiding. */
export function voidButton(l, what, done) {
  if (voidOf(l) || !mayVoid(l) || typeof S.phone.void !== 'function') return null;
  const btn = h('button.btn.wide.danger', { type: 'button', testid: 'record-void' }, `作废此${what}`);
  btn.addEventListener(
    'click',
    once(
      btn,
      async () => {
        const reason = await ask({
          title: `作废此${what}？`,
          text: '作废后它不再出现在列表和统计中，但仍保留在历史和导出数据里（标明已作废）。请说明原因，如“重复录入”。',
          input: '作废原因（必填）',
          ok: '作废',
          danger: true,
        });
        if (reason == null) return;
        await done(() => S.phone.void(l.id, reason, Date.now()));
      },
      '正在作废…',
    ),
  );
  return btn;
}

/** Hides voided records unless `showVoided`. */
export const visible = (list, showVoided) => (showVoided ? list : list.filter((l) => !voidOf(l)));

/** A 显示已作废 switch for a list; `onchange(on)`. Null when nothing is voided. */
export function voidedToggle(list, on, onchange) {
  const n = list.filter(voidOf).length;
  if (!n && !on) return null;
  return h(
    'label.toggle',
    { testid: 'show-voided' },
    h('input', { type: 'checkbox', checked: on, onchange: (e) => onchange(e.target.checked) }),
    ` 显示已作废（${n}）`,
  );
}

/**
 * The 有冲突 card for a record with concurrent single-value edits: each
 * competing value with who/when where known, and a button to keep it.
 * `labels` names the fields; `show(field, value)` formats a value.
 */
export function conflictsCard(l, labels, show = (_f, v) => String(v ?? '（空）'), done) {
  const list = (l && l.conflicts) || [];
  if (!list.length) return null;
  return h(
    'div.card.conflict',
    { testid: 'conflict', role: 'alert' },
    h('div.conflict-title', null, '有冲突：多人同时修改了同一项'),
    h('p.small', null, '请选择保留哪一个，选择后其他手机同步后也会一致。'),
    list.map((c) =>
      h(
        'div.conflict-field',
        { testid: 'conflict-field', 'data-field': c.field },
        h('div.label', null, labels[c.field] || c.field),
        c.values.map((entry) => {
          const value = entry && typeof entry === 'object' && 'value' in entry ? entry.value : entry;
          const by = entry && typeof entry === 'object' ? entry.by : null;
          const at = entry && typeof entry === 'object' ? entry.at : null;
          const btn = h('button.btn.small', { type: 'button', testid: 'conflict-choose' }, '采用');
          btn.addEventListener(
            'click',
            once(btn, () => done(() => S.phone.resolveConflict(l.id, c.field, value)), '…'),
          );
          return h(
            'div.conflict-value',
            { testid: 'conflict-value' },
            h('div.conflict-text', null, h('div', null, show(c.field, value)), by || at ? h('div.muted.small', null, [by ? personName(by) : null, at ? when(at) : null].filter(Boolean).join(' · ')) : null),
            btn,
          );
        }),
      ),
    ),
  );
}

// ------------------------------------------------------------ households

const INDEX_KEY = () => `gs-hh-index/${me().person}`;
let seeded = false;

/**
 * Every household on the phone as a small row for lists and pickers:
 * {id, grid, head, address, phone, members: [names], member_phones, tags, voided}.
 * From the replica's cached index (views.rs) when the build has it, kept across
 * restarts in localStorage so only changed households are read again.
 */
export function householdRows() {
  if (typeof S.phone.householdIndex === 'function') {
    if (!seeded) {
      seeded = true;
      try {
        const saved = localStorage.getItem(INDEX_KEY());
        if (saved) S.phone.seedHouseholdIndex(JSON.parse(saved));
      } catch (e) {
        console.warn('household index not seeded:', e);
      }
    }
    const out = S.phone.householdIndex();
    if (out.changed) {
      try {
        localStorage.setItem(INDEX_KEY(), JSON.stringify(S.phone.householdIndexState()));
      } catch {}
    }
    return out.rows;
  }
  return records('household').map((l) => {
    const f = l.record.fields;
    return {
      id: l.id,
      grid: l.record.meta.grid,
      head: f.head,
      address: f.address,
      phone: f.phone,
      members: (f.members || []).map((m) => m.name),
      member_phones: (f.members || []).map((m) => m.phone).filter(Boolean),
      tags: f.tags,
      voided: !!l.voided,
    };
  });
}

export const rowName = (r) => r.head || r.address || '（未填写户主）';

/** Lower-cased text a query is matched against. */
function hay(r) {
  return r._hay || (r._hay = [r.head, r.address, ...r.members].join(' ').toLowerCase());
}

/**
 * Households matching `q`: every word must occur in the head's, a member's
 * name or the address, or (digits) in a phone number; the head's name first.
 */
export function searchHouseholds(rows, q, limit = 30) {
  const words = q.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return { total: rows.length, shown: rows.slice(0, limit) };
  const hits = [];
  for (const r of rows) {
    let ok = true;
    for (const w of words) {
      if (hay(r).includes(w)) continue;
      if (/^\d{3,}$/.test(w) && (r.phone.includes(w) || r.member_phones.some((p) => p.includes(w)))) continue;
      ok = false;
      break;
    }
    if (ok) hits.push(r);
  }
  const w0 = words[0];
  const score = (r) => ((r.head || '').toLowerCase().startsWith(w0) ? 0 : (r.head || '').toLowerCase().includes(w0) ? 1 : 2);
  hits.sort((a, b) => score(a) - score(b));
  return { total: hits.length, shown: hits.slice(0, limit) };
}

/** Why a row matched `q`, beyond its head and address (a member, a phone tail). */
function matchedBy(r, q) {
  const w = q.trim().toLowerCase();
  if (!w) return null;
  const m = r.members.find((n) => n.toLowerCase().includes(w));
  if (m && !(r.head || '').toLowerCase().includes(w)) return `成员 ${m}`;
  if (/^\d{3,}$/.test(w)) {
    const p = [r.phone, ...r.member_phones].find((x) => x.includes(w));
    if (p) return `电话尾号 ${p.slice(-4)}`;
  }
  return null;
}

/**
 * A search-as-you-type household picker. `selected` a household id or null;
 * `optional` allows no household. Returns {el, value}; fires a bubbling
 * `change` when the choice changes.
 */
export function householdPicker(selected, { testid, optional = true, noneText = '不针对具体住户' } = {}) {
  let rows = null;
  const all = () => rows || (rows = householdRows().filter((r) => !r.voided || r.id === selected));
  let value = selected || null;
  const el = h('div.picker', { testid });
  const announce = () => el.dispatchEvent(new Event('change', { bubbles: true }));

  const choose = (id) => {
    value = id;
    paint();
    announce();
  };

  const paint = (focus) => {
    el.dataset.value = value || '';
    if (value) {
      const l = rec(value);
      const r = all().find((x) => x.id === value);
      const name = r ? rowName(r) : l ? householdName(l) : '（本机没有这户）';
      const address = r ? r.address : l ? l.record.fields.address : '';
      el.replaceChildren(
        h(
          'div.picked',
          { testid: `${testid}-picked`, 'data-id': value },
          h('div.picked-text', null, h('b', null, name), address ? h('div.muted.small', null, address) : null),
          h('button.btn.small', { type: 'button', testid: `${testid}-change`, onclick: () => ((value = null), paint(true), announce()) }, '更换'),
        ),
      );
      return;
    }
    const results = h('div.picker-results', { testid: `${testid}-results`, role: 'listbox' });
    const count = h('div.muted.small.picker-count', { testid: `${testid}-count` });
    const input = h('input.input', {
      type: 'search',
      placeholder: '搜索户主、成员姓名、地址或电话尾号',
      testid: `${testid}-search`,
      enterkeyhint: 'search',
      autocomplete: 'off',
      'aria-label': '搜索住户',
    });
    const show = () => {
      const q = input.value;
      const { total, shown } = searchHouseholds(all(), q, q.trim() ? 30 : 5);
      count.textContent = q.trim()
        ? total ? (total > shown.length ? `找到 ${total} 户，显示前 ${shown.length} 户，可输入更多关键字` : `找到 ${total} 户`) : '没有找到，换个关键字试试'
        : `共 ${all().length} 户，输入关键字查找`;
      results.replaceChildren(
        ...shown.map((r) => {
          const why = matchedBy(r, q);
          return h(
            'button.picker-item',
            { type: 'button', role: 'option', testid: `${testid}-option`, 'data-id': r.id, onclick: () => choose(r.id) },
            h('b', null, rowName(r)),
            h('span.muted.small', null, r.address),
            why ? h('span.tag.alt', null, why) : null,
          );
        }),
      );
    };
    // Typing a query is not input of the form (no draft, no dirty mark).
    input.addEventListener('input', (e) => {
      e.stopPropagation();
      show();
    });
    show();
    el.replaceChildren(input, count, results, optional ? h('div.muted.small.picker-none', null, `不选则为“${noneText}”`) : null);
    if (focus) input.focus();
  };
  paint();
  return {
    el,
    get value() {
      return value;
    },
  };
}
