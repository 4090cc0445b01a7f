// 今日 / 待办: the screen a working day starts from, per role — my cases and
// the ones handed to me, promises coming due, what others changed since I last
// looked (with the tab's badge) — and 民情日记, my visits day by day.

import { OPEN_STATUSES, S, assigneeOf, empty, go, householdName, isGridPerson, isOverdue, live, me, personName, rec, records, territoryName } from './core.js';
import { promiseItem, promiseState } from './promises.js';
import { CASE_KIND, STATUS, VISIT_KIND, dateOnly, h, hhmm, toLocalInput, when } from './ui.js';

const DAY = 86_400_000;
const SHOWN = 20; // rows per section before "查看全部"
const WEEKDAY = '日一二三四五六';

// ------------------------------------------------------- "since I last looked"
// Kept per person on this phone (localStorage): when they last had 今日 open.
// Nothing counts as new before the phone's first finished sync for them: the
// first download is their grid, not news.
const lookedKey = () => `gs-looked:${me().person}`;

/** When this person last looked at 今日 (Unix ms), or null before their first sync on this phone. */
export function lastLooked() {
  const v = Number(localStorage.getItem(lookedKey()));
  return Number.isFinite(v) && v > 0 ? v : null;
}

function setLooked(ms) {
  try {
    localStorage.setItem(lookedKey(), String(ms));
  } catch {}
}

/** After a sync finished well: the first one for this person on this phone starts the "new" count. */
export function afterSync() {
  if (me() && lastLooked() == null) setLooked(Date.now());
}

/** Records others changed that reached the phone after `ms`: [{id, at}], newest first, still on the phone. */
function changesSince(ms) {
  if (ms == null || !S.phone.changedSince) return [];
  let out = [];
  try {
    out = S.phone.changedSince(ms) || [];
  } catch (e) {
    console.error(e);
  }
  return out.filter((c) => rec(c.id)).sort((a, b) => b.at - a.at);
}

/**
 * The number on the 今日 tab: changes by others since the person last looked.
 * While 今日 is open the person is looking, so it stays at 0.
 */
export function badgeCount(onToday) {
  if (!me() || lastLooked() == null) return 0;
  if (onToday) {
    setLooked(Date.now());
    return 0;
  }
  // Counted without opening the records: this runs on every status change.
  try {
    return S.phone.changedSince ? S.phone.changedSince(lastLooked()).length : 0;
  } catch {
    return 0;
  }
}

// --------------------------------------------------------------- the pieces
const isMine = (id) => id === me().person;
const isOpen = (l) => OPEN_STATUSES.includes(l.status);

/** The 交办 entry that handed a case to its assignee (for who and when). */
function assignedBy(l, assignee) {
  let best = null;
  for (const e of l.record.status_log) if (e.assignee === assignee && (!best || e.at >= best.at)) best = e;
  return best;
}

/** Overdue first (the longest overdue first), then by deadline, then oldest report first. */
function byUrgency(a, b) {
  const oa = isOverdue(a) ? 0 : 1;
  const ob = isOverdue(b) ? 0 : 1;
  if (oa !== ob) return oa - ob;
  const da = a.record.fields.due_at ?? Infinity;
  const db = b.record.fields.due_at ?? Infinity;
  if (da !== db) return da - db;
  return a.record.meta.created_at - b.record.meta.created_at;
}

/** Calendar days since a deadline (1 the day after it). */
function daysLate(due) {
  return Math.max(1, Math.round((new Date().setHours(0, 0, 0, 0) - new Date(due).setHours(0, 0, 0, 0)) / DAY));
}

/** A case on a to-do list: title, step, deadline; with `where`, its grid and who reported it. */
function todoCase(l, { where = false, handedBy = null } = {}) {
  const f = l.record.fields;
  const overdue = isOverdue(l);
  const hh = f.household ? rec(f.household) : null;
  return h(
    'a.item.todo',
    { href: `#/case/${l.id}`, testid: 'todo-case', 'data-id': l.id, class: overdue ? 'overdue' : null },
    h('div.item-title', null, f.title || '（无标题）'),
    h(
      'div.item-meta',
      null,
      h('span', { class: `status s-${l.status}` }, l.status_name),
      h('span.tag.alt', null, CASE_KIND[f.kind] || f.kind),
      overdue ? h('span.tag.danger', null, `超期 ${daysLate(f.due_at)} 天`) : null,
      !overdue && f.due_at ? h('span.muted', null, `期限 ${dateOnly(f.due_at)}`) : null,
    ),
    where
      ? h('div.item-sub', { testid: 'todo-case-where' }, `${territoryName(l.record.meta.grid)} · ${personName(l.record.meta.creator)} 上报 · ${when(l.record.meta.created_at)}`)
      : hh
        ? h('div.item-sub', null, householdName(hh))
        : null,
    handedBy ? h('div.item-sub', { testid: 'todo-case-handed' }, `${personName(handedBy.by)} 交办给我 · ${when(handedBy.at)}`) : null,
  );
}

/** A section: heading with its count, up to SHOWN rows, then a link to the rest. */
function section(testid, title, rows, { none, more, moreText } = {}) {
  if (!rows.length && none == null) return null;
  return h(
    'div.todo-section',
    { testid, 'data-count': rows.length },
    h('h2', null, title, h('span.todo-count', null, ` ${rows.length}`)),
    h('div.list', null, rows.length ? rows.slice(0, SHOWN) : empty(none)),
    more ? h('a.more', { href: more, testid: `${testid}-more` }, `${moreText} ›`) : null,
  );
}

/** What happened last to a record, by someone other than me: {by, at, what}. */
function lastActivity(l) {
  const r = l.record;
  const events = [{ by: r.meta.creator, at: r.meta.created_at, what: '新建' }];
  for (const u of r.follow_ups || []) events.push({ by: u.by, at: u.at, what: '新增跟进' });
  for (const e of r.status_log || []) {
    const to = STATUS[e.to] || e.to;
    events.push({ by: e.by, at: e.at, what: e.kind === 'reopen' ? `退回至${to}` : e.assignee ? `交办给${personName(e.assignee)}` : `标记为${to}` });
  }
  for (const o of r.outcomes || []) events.push({ by: o.by, at: o.at, what: o.kept ? '记录已践诺' : '记录未践诺' });
  if (l.voided) events.push({ by: l.voided.by, at: l.voided.at, what: '作废' });
  const others = events.filter((e) => !isMine(e.by)).sort((a, b) => b.at - a.at);
  return others[0] || null;
}

const KIND_NAME = { household: '住户', visit_log: '走访', case: '事件', promise: '承诺' };
const HREF = { household: 'household', visit_log: 'visit', case: 'case' };

/** A record in a few words, without its kind (shown beside it). */
function titleOf(l) {
  const f = l.record.fields;
  switch (l.record.type) {
    case 'household':
      return `${householdName(l)}　${f.address || ''}`;
    case 'visit_log': {
      const hh = f.household ? rec(f.household) : null;
      return `${hh ? `${householdName(hh)}：` : ''}${f.notes || f.findings || when(f.visited_at)}`;
    }
    case 'case':
      return f.title || '（无标题）';
    case 'promise':
      return f.content;
    default:
      return l.summary;
  }
}

function changeItem(c) {
  const l = rec(c.id);
  const type = l.record.type;
  const act = lastActivity(l);
  const promiseHousehold = type === 'promise' && l.record.fields.household;
  const href = HREF[type] ? `#/${HREF[type]}/${l.id}` : promiseHousehold ? `#/household/${promiseHousehold}` : '#/promises?filter=all';
  return h(
    'a.item.change',
    { href, testid: 'change-item', 'data-id': l.id },
    h('div.item-title', null, h('span.kind', null, KIND_NAME[type] || type), h('span.clamp1', null, titleOf(l))),
    h('div.item-sub', { testid: 'change-who' }, act ? `${personName(act.by)} ${act.what}` : '内容有更新', ' · ', `收到于 ${when(c.at)}`),
  );
}

function changesSection(since) {
  if (since == null) return null; // before the first sync: nothing is news yet
  const changes = changesSince(since);
  return h(
    'div.todo-section',
    { testid: 'today-changes', 'data-count': changes.length },
    h('h2', null, '新变化', h('span.todo-count', null, ` ${changes.length}`)),
    h('p.muted.small', null, `其他人自 ${when(since)} 以来的修改`),
    h('div.list', null, changes.length ? changes.slice(0, SHOWN).map(changeItem) : empty('自上次查看以来没有新的变化')),
    changes.length > SHOWN ? h('p.muted.small', null, `另有 ${changes.length - SHOWN} 条较早的变化`) : null,
  );
}

function promisesSection(promises, showGrid) {
  const now = Date.now();
  const due = promises
    .map((p) => [p, promiseState(p, now)])
    .filter(([, s]) => s === 'overdue' || s === 'soon')
    .sort(([a], [b]) => a.record.fields.due_at - b.record.fields.due_at)
    .map(([p]) => p);
  const overdue = due.filter((p) => promiseState(p, now) === 'overdue').length;
  return h(
    'div.todo-section',
    { testid: 'today-promises', 'data-count': due.length },
    h('h2', null, '承诺事项', h('span.todo-count', null, ` ${due.length}`)),
    due.length ? h('p.muted.small', null, overdue ? `${overdue} 项已超期，${due.length - overdue} 项即将到期` : `${due.length} 项即将到期`) : null,
    h('div.list', null, due.length ? due.slice(0, SHOWN).map((p) => promiseItem(p, { showGrid })) : empty('近期没有到期的承诺')),
    h('a.more', { href: '#/promises', testid: 'today-promises-all' }, '全部承诺事项 ›'),
  );
}

/** Today's visits by me, short; the way into 民情日记. */
/**
 * My visits of today, parsing only today's visit logs (the phone knows every
 * visit's time without parsing it): 今日 opens fast with years of visits.
 */
function todaysVisits() {
  const today = new Date().setHours(0, 0, 0, 0);
  return S.phone
    .visitTimes()
    .filter(([, at]) => at >= today && at < today + DAY)
    .map(([vid]) => S.phone.record(vid))
    .filter((v) => v && live(v) && isMine(v.record.meta.creator));
}

function diarySection(visits) {
  const today = new Date().setHours(0, 0, 0, 0);
  const mine = visits.filter((v) => v.record.fields.visited_at >= today && v.record.fields.visited_at < today + DAY);
  mine.sort((a, b) => a.record.fields.visited_at - b.record.fields.visited_at);
  return h(
    'div.todo-section',
    { testid: 'today-diary', 'data-count': mine.length },
    h('h2', null, '今日走访 · 民情日记', h('span.todo-count', null, ` ${mine.length}`)),
    h('div.list', null, mine.length ? mine.map(diaryEntry) : empty('今天还没有走访记录')),
    h('div.row', null, h('a.btn', { href: '#/diary', testid: 'today-diary-open' }, '民情日记'), h('a.btn.primary', { href: '#/visit/new', testid: 'today-visit-new' }, '记录走访')),
  );
}

// ------------------------------------------------------------------ 今日
const SINCE = Symbol('since'); // kept on the route's params: the same object while this visit to 今日 lasts

/** The home screen: what to do today, by role. */
export function todayView(params) {
  const id = me();
  // Entering 今日 is looking: show what came since the last look, and start the next count now.
  if (!(SINCE in params)) {
    params[SINCE] = lastLooked();
    if (params[SINCE] != null) setLooked(Date.now());
  }
  const since = params[SINCE];
  const now = new Date();
  const cases = records('case').filter(live);
  const promises = records('promise').filter(live);
  const open = cases.filter(isOpen);
  const assigned = open.filter((l) => isMine(assigneeOf(l))).sort(byUrgency);
  const assignedRows = assigned.map((l) => todoCase(l, { where: !isGridPerson(), handedBy: assignedBy(l, id.person) }));
  const head = h(
    'div.head',
    null,
    h('h1', null, '今日'),
    h('span.count', { testid: 'today-date' }, `${now.getMonth() + 1}月${now.getDate()}日 星期${WEEKDAY[now.getDay()]}`),
  );

  if (!S.phone.keepsReplica()) {
    // An administrator over a sub-district or more: records are not kept on this device (the server sends none).
    return h(
      'section.today',
      { testid: 'today', 'data-role': id.role, 'data-replica': 'none' },
      head,
      h('p.muted.small', { testid: 'today-territory' }, `负责区域：${territoryName(id.territory)}`),
      h(
        'p.banner',
        { testid: 'today-online-admin' },
        '您管理的区域范围大，本机不保存住户、走访和事件记录（全部下载会占满手机或浏览器）。数据和统计请在「统计与导出」查看、下载；人员、设备和导入请到「管理控制台」办理。',
      ),
      h('a.btn.wide.primary', { href: '#/admin', testid: 'today-console' }, '管理控制台'),
      h('a.btn.wide', { href: '#/reports', testid: 'today-reports' }, '统计与导出'),
    );
  }

  if (isGridPerson()) {
    // A grid manager: my cases (reported by me, or handed to me), my promises, my grid's news, my day.
    const handed = new Set(assigned.map((l) => l.id));
    const mine = open.filter((l) => isMine(l.record.meta.creator) && !handed.has(l.id)).sort(byUrgency);
    const overdue = [...assigned, ...mine].filter(isOverdue).length;
    const myVisits = todaysVisits();
    return h(
      'section.today',
      { testid: 'today', 'data-role': id.role },
      head,
      overdue ? h('p.banner.danger', { testid: 'today-overdue-note' }, `${overdue} 件事件已超期，请优先办理。`) : null,
      section('today-assigned', '交办给我的', assignedRows),
      section('today-my-cases', '我的待办事件', mine.map((l) => todoCase(l)), { none: '没有未办结的事件', more: '#/cases', moreText: '全部事件' }),
      promisesSection(promises, false),
      changesSection(since),
      diarySection(myVisits),
    );
  }

  // A supervisor or administrator: the cases in their territory that need someone to act.
  const awaiting = open.filter((l) => l.status === 'reported').sort((a, b) => a.record.meta.created_at - b.record.meta.created_at);
  const overdue = open.filter((l) => isOverdue(l) && l.status !== 'reported').sort(byUrgency);
  const myVisits = todaysVisits();
  return h(
    'section.today',
    { testid: 'today', 'data-role': id.role },
    head,
    h('p.muted.small', { testid: 'today-territory' }, `负责区域：${territoryName(id.territory)}`),
    section('today-awaiting', '待受理', awaiting.map((l) => todoCase(l, { where: true })), {
      none: '没有等待受理的事件',
      more: awaiting.length > SHOWN ? '#/cases' : null,
      moreText: `还有 ${awaiting.length - SHOWN} 件，查看全部事件`,
    }),
    section('today-overdue', '超期未办结', overdue.map((l) => todoCase(l, { where: true })), { none: '没有超期的事件', more: '#/cases', moreText: '全部事件' }),
    section('today-assigned', '交办给我的', assignedRows),
    promisesSection(promises, true),
    changesSection(since),
    myVisits.length ? diarySection(myVisits) : null,
    id.role === 'administrator' ? h('a.btn.wide', { href: '#/reports', testid: 'today-reports' }, '统计与导出') : null,
  );
}

// --------------------------------------------------------------- 民情日记
const dayKey = (ms) => toLocalInput(ms, false); // YYYY-MM-DD in local time

function dayTitle(key) {
  const [y, m, d] = key.split('-').map(Number);
  const date = new Date(y, m - 1, d);
  const today = dayKey(Date.now());
  const rel = key === today ? '（今天）' : key === dayKey(Date.now() - DAY) ? '（昨天）' : '';
  const year = y === new Date().getFullYear() ? '' : `${y}年`;
  return `${year}${m}月${d}日 星期${WEEKDAY[date.getDay()]}${rel}`;
}

/** One visit as a diary entry: time, household, kind, what was found. */
function diaryEntry(v) {
  const f = v.record.fields;
  const hh = f.household ? rec(f.household) : null;
  return h(
    'a.item.diary',
    { href: `#/visit/${v.id}`, testid: 'diary-entry', 'data-id': v.id },
    h('div.item-title', null, h('span.diary-time', null, hhmm(f.visited_at)), hh ? householdName(hh) : '（未关联住户）', f.kind ? h('span.kind', null, VISIT_KIND[f.kind]) : null),
    f.notes ? h('div.item-sub.clamp', null, f.notes) : null,
    f.concerns.length ? h('div.item-sub', null, `诉求：${f.concerns.join('；')}`) : null,
    f.findings ? h('div.item-sub.warn', null, `发现问题：${f.findings}`) : null,
  );
}

/** Local midnight of a `YYYY-MM-DD` day, `plus` days later (Unix ms). */
function dayStart(key, plus = 0) {
  const [y, m, d] = key.split('-').map(Number);
  return new Date(y, m - 1, d + plus).getTime();
}

const DIARY_DAYS = 7; // days with visits read at first; 查看更早 reads as many again
let diaryDays = DIARY_DAYS;

/**
 * 民情日记: my visits of one day (`?day=YYYY-MM-DD`, today when absent), and the
 * days with my visits. Which days have visits comes from the visits' times
 * (the phone knows them without parsing); only the visits of the newest days
 * listed and of the day shown are read, then kept if mine — 查看更早 reads more days.
 */
export function diaryView({ day }) {
  // Days with anyone's visits on the phone, newest first.
  const allDays = [...new Set(S.phone.visitTimes().map(([, at]) => dayKey(at)))].sort().reverse();
  const today = dayKey(Date.now());
  const shown = /^\d{4}-\d{2}-\d{2}$/.test(day || '') ? day : today;
  const mineBetween = (from, to) => S.phone.between('visit_log', from, to).filter(live).filter((v) => isMine(v.record.meta.creator));
  // My visits by day, over the newest `diaryDays` days with visits.
  const readDays = allDays.slice(0, diaryDays);
  const byDay = new Map();
  if (readDays.length) {
    for (const v of mineBetween(dayStart(readDays[readDays.length - 1]), dayStart(readDays[0], 1))) {
      const k = dayKey(v.record.fields.visited_at);
      if (!byDay.has(k)) byDay.set(k, []);
      byDay.get(k).push(v);
    }
  }
  const read = new Set(readDays);
  const entries = read.has(shown) ? byDay.get(shown) || [] : mineBetween(dayStart(shown), dayStart(shown, 1));
  // Earlier / later: the nearest day with my visits among the days read, else the nearest day not yet read (today is always reachable).
  const candidate = (d) => (read.has(d) ? byDay.has(d) : true);
  const prev = allDays.find((d) => d < shown && candidate(d)) || null;
  const later = allDays.filter((d) => d > shown && d <= today && candidate(d));
  const next = later.length ? later[later.length - 1] : shown < today ? today : null;
  const days = readDays.filter((d) => byDay.has(d));
  const older = allDays.length > readDays.length;
  const goDay = (d) => location.replace(d === today ? '#/diary' : `#/diary?day=${d}`);
  const picker = h('input.input.diary-pick', {
    type: 'date',
    value: shown,
    max: today,
    testid: 'diary-pick',
    'aria-label': '选择日期',
    onchange: (e) => e.target.value && goDay(e.target.value),
  });
  const households = new Set(entries.map((v) => v.record.fields.household).filter(Boolean)).size;
  return h(
    'section.diary-page',
    null,
    h('div.topbar', null, h('button.back', { type: 'button', testid: 'back', 'aria-label': '返回', onclick: () => go('#/today') }, '‹ 今日'), h('h1', null, '民情日记')),
    h(
      'div.diary-nav',
      null,
      h('button.btn', { type: 'button', testid: 'diary-prev', disabled: !prev, 'aria-label': '前一天', onclick: () => prev && goDay(prev) }, '‹'),
      h('div.diary-day', { testid: 'diary-day', 'data-day': shown }, dayTitle(shown)),
      h('button.btn', { type: 'button', testid: 'diary-next', disabled: !next, 'aria-label': '后一天', onclick: () => next && goDay(next) }, '›'),
    ),
    picker,
    h('p.muted.small', { testid: 'diary-summary' }, entries.length ? `走访 ${entries.length} 次${households ? `，涉及 ${households} 户` : ''}` : '这一天没有走访记录'),
    h('div.list', null, entries.map(diaryEntry)),
    h('h2', null, '有走访的日子'),
    days.length
      ? h(
          'div.diary-days',
          null,
          days.map((d) =>
            h('a.chip', { href: d === today ? '#/diary' : `#/diary?day=${d}`, testid: 'diary-day-link', 'data-day': d, 'aria-selected': d === shown ? 'true' : 'false' }, `${dayTitle(d).replace(/星期.|（.*）/g, '')} · ${byDay.get(d).length}`),
          ),
        )
      : empty(older ? '最近没有走访记录' : '还没有走访记录'),
    older ? h('button.btn.wide', { type: 'button', testid: 'diary-older', onclick: () => ((diaryDays += DIARY_DAYS), S.refresh()) }, '查看更早') : null,
  );
}
