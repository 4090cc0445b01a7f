// 承诺事项: every promise on the phone in one list, filtered by where it stands
// (due soon, overdue, kept, not kept), each with its household, who made it and
// its outcome; an open promise's outcome is recorded from here too.

import { S, attempt, empty, householdName, live, personName, rec, records, saved, territoryName, topbar } from './core.js';
import { ask, dateOnly, h, when } from './ui.js';

/** A promise is "due soon" when its deadline is within this many days. */
export const SOON_DAYS = 3;
const DAY = 86_400_000;

/** The latest recorded outcome (by time, then id), or null: the same rule as `Promise::kept` in shared/. */
export function latestOutcome(p) {
  let best = null;
  for (const o of p.record.outcomes) if (!best || o.at > best.at || (o.at === best.at && o.id > best.id)) best = o;
  return best;
}

/** Where a promise stands now: kept, not_kept, overdue, soon (due within SOON_DAYS) or open. */
export function promiseState(p, now = Date.now()) {
  const out = latestOutcome(p);
  if (out) return out.kept ? 'kept' : 'not_kept';
  const due = p.record.fields.due_at;
  if (due < now) return 'overdue';
  return due < now + SOON_DAYS * DAY ? 'soon' : 'open';
}

// Filter chips: [label, test on the state].
const FILTERS = {
  open: ['待落实', (s) => s === 'soon' || s === 'open' || s === 'overdue'],
  soon: ['即将到期', (s) => s === 'soon'],
  overdue: ['已超期', (s) => s === 'overdue'],
  kept: ['已践诺', (s) => s === 'kept'],
  not_kept: ['未践诺', (s) => s === 'not_kept'],
  all: ['全部', () => true],
};

const TAG = {
  kept: ['tag ok', '已践诺'],
  not_kept: ['tag danger', '未践诺'],
  overdue: ['tag danger', '已超期'],
  soon: ['tag', '即将到期'],
  open: ['tag alt', '待落实'],
};

/** How far off a deadline is, in words: 今天到期 / 还有 2 天 / 超期 3 天. */
function dueWords(due, now = Date.now()) {
  const day = (ms) => new Date(ms).setHours(0, 0, 0, 0);
  const n = Math.round((day(due) - day(now)) / DAY);
  if (n === 0) return due < now ? '今天已到期' : '今天到期';
  return n > 0 ? `还有 ${n} 天` : `超期 ${-n} 天`;
}

/** One promise: content, household, deadline, who made it, its outcome; buttons to record one while open. */
export function promiseItem(p, { showGrid = false } = {}) {
  const f = p.record.fields;
  const state = promiseState(p);
  const out = latestOutcome(p);
  const hh = f.household ? rec(f.household) : null;
  const act = (kept) => async () => {
    const note = kept
      ? (await ask({ title: '确认已践诺', text: f.content, ok: '已践诺' })) && ''
      : await ask({ title: '未能践诺', text: '请说明原因', input: '原因', ok: '保存' });
    if (note == null || note === false) return;
    if (attempt(() => S.phone.recordPromiseOutcome(p.id, kept, note, Date.now())) && (await saved())) S.refresh();
  };
  const [cls, word] = TAG[state];
  return h(
    'div.item',
    { testid: 'promise-row', 'data-id': p.id, 'data-state': state },
    h('div.item-title', null, f.content),
    hh ? h('div.item-sub', null, h('a', { href: `#/household/${hh.id}` }, householdName(hh)), `　${hh.record.fields.address || ''}`) : null,
    h(
      'div.item-meta',
      null,
      h('span', { class: cls }, word),
      h('span.muted', null, `期限 ${dateOnly(f.due_at)}`),
      out ? null : h('span', { class: state === 'overdue' ? 'warn' : 'muted' }, dueWords(f.due_at)),
    ),
    h('div.item-sub.small', null, `${personName(p.record.meta.creator)} 承诺`, showGrid ? ` · ${territoryName(p.record.meta.grid)}` : ''),
    out ? h('div.item-sub.small', { testid: 'promise-outcome' }, `${personName(out.by)} ${when(out.at)} 记录${out.kept ? '已践诺' : '未践诺'}`, out.note ? `：${out.note}` : '') : null,
    out
      ? null
      : h(
          'div.row',
          null,
          h('button.btn', { type: 'button', testid: 'promise-row-kept', onclick: act(true) }, '已践诺'),
          h('button.btn', { type: 'button', testid: 'promise-row-not-kept', onclick: act(false) }, '未践诺'),
        ),
  );
}

/** The promise list; `?filter=` picks the filter (待落实 when absent). */
export function promisesView(params = {}) {
  const filter = FILTERS[params.filter] ? params.filter : 'open';
  const now = Date.now();
  const all = records('promise').filter(live);
  const states = new Map(all.map((p) => [p.id, promiseState(p, now)]));
  const [, test] = FILTERS[filter];
  const shown = all.filter((p) => test(states.get(p.id)));
  // Open ones by deadline (the most urgent first), settled ones newest outcome first.
  const key = (p) => {
    const out = latestOutcome(p);
    return out ? -out.at : p.record.fields.due_at - 1e15;
  };
  shown.sort((a, b) => key(a) - key(b));
  const multiGrid = new Set(all.map((p) => p.record.meta.grid)).size > 1;
  return h(
    'section',
    null,
    topbar('承诺事项', '#/today', h('span.count', { testid: 'promises-count' }, `共 ${all.length} 项`)),
    h(
      'div.chips.scroll',
      { role: 'tablist' },
      Object.entries(FILTERS).map(([k, [name, t]]) =>
        h(
          'button.chip',
          {
            type: 'button',
            role: 'tab',
            testid: `promise-filter-${k}`,
            'aria-selected': k === filter ? 'true' : 'false',
            onclick: () => location.replace(`#/promises?filter=${k}`),
          },
          `${name} ${all.filter((p) => t(states.get(p.id))).length}`,
        ),
      ),
    ),
    h(
      'div.list',
      { testid: 'promise-list' },
      shown.length ? shown.map((p) => promiseItem(p, { showGrid: multiGrid })) : empty(all.length ? '这一类没有承诺事项' : '还没有承诺事项。在住户页面底部可以新增。'),
    ),
    h('p.muted.small', null, `“即将到期”指 ${SOON_DAYS} 天内到期、尚未记录结果的承诺。新增承诺请到对应住户的页面。`),
  );
}
