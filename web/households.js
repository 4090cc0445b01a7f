// 住户: my grid's households, one household with its visits, cases and promises, and the household form.

import { S, attempt, back, empty, go, gridOf, gridPicker, householdName, isOverdue, rec, records, saved, topbar } from './core.js';
import { DEFAULT_TAGS, VISIT_KIND, ask, daysAgo, dateOnly, field, h, maskId, toLocalInput, toast, when } from './ui.js';

const filter = { q: '', tag: '' };

/** household id -> newest visited_at, from the replica's record headers (no visit log is parsed). */
function lastVisits() {
  return new Map(Object.entries(S.phone.lastVisits()));
}

export function householdsView() {
  const all = records('household');
  const last = lastVisits();
  const tags = [...new Set([...DEFAULT_TAGS.slice(0, 3), ...all.flatMap((l) => l.record.fields.tags)])];
  const list = h('div.list');
  const count = h('span.count');

  const draw = () => {
    const q = filter.q.trim().toLowerCase();
    const shown = all.filter((l) => {
      const f = l.record.fields;
      if (filter.tag && !f.tags.includes(filter.tag)) return false;
      if (!q) return true;
      const hay = [f.head, f.address, ...f.members.map((m) => m.name)].join(' ').toLowerCase();
      return hay.includes(q);
    });
    count.textContent = filter.q || filter.tag ? `${shown.length} / ${all.length} 户` : `共 ${all.length} 户`;
    list.replaceChildren(
      ...shown.map((l) => householdItem(l, last.get(l.id))),
    );
    if (!shown.length) list.append(empty(all.length ? '没有符合条件的住户' : '本机还没有住户数据。联网同步后会自动下载本网格的住户。'));
    for (const c of chipRow.children) c.setAttribute('aria-pressed', c.dataset.tag === filter.tag ? 'true' : 'false');
  };

  const search = h('input.input.search', {
    type: 'search',
    placeholder: '搜索姓名或地址',
    value: filter.q,
    testid: 'households-search',
    enterkeyhint: 'search',
    oninput: (e) => {
      filter.q = e.target.value;
      draw();
    },
  });
  const chipRow = h('div.chips.scroll', null, [
    h('button.chip', { type: 'button', 'data-tag': '', testid: 'tag-all', onclick: () => ((filter.tag = ''), draw()) }, '全部'),
    ...tags.map((t) =>
      h('button.chip', { type: 'button', 'data-tag': t, testid: `tag-${t}`, onclick: () => ((filter.tag = filter.tag === t ? '' : t), draw()) }, t),
    ),
  ]);
  draw();
  return h(
    'section',
    null,
    h('div.head', null, h('h1', null, '住户'), count),
    search,
    chipRow,
    list,
    h('button.btn.wide', { type: 'button', testid: 'household-new', onclick: () => go('#/household/new') }, '＋ 新增住户'),
  );
}

function householdItem(l, lastVisit) {
  const f = l.record.fields;
  return h(
    'a.item',
    { href: `#/household/${l.id}`, testid: 'household-item', 'data-id': l.id },
    h('div.item-title', null, householdName(l), f.members.length ? h('span.muted.normal', null, `等${f.members.length + 1}人`) : null),
    h('div.item-sub', null, f.address || '（未填写地址）'),
    h(
      'div.item-meta',
      null,
      f.tags.map((t) => h('span.tag', null, t)),
      h('span', { class: lastVisit ? 'muted' : 'warn' }, lastVisit ? `上次走访 ${daysAgo(lastVisit)}` : '尚未走访'),
    ),
  );
}

export function visitItem(v, showHousehold) {
  const f = v.record.fields;
  const hh = showHousehold && f.household ? rec(f.household) : null;
  return h(
    'a.item',
    { href: `#/visit/${v.id}`, testid: 'visit-item', 'data-id': v.id },
    h(
      'div.item-title',
      null,
      hh ? householdName(hh) : when(f.visited_at),
      f.kind ? h('span.kind', null, VISIT_KIND[f.kind]) : null,
    ),
    hh ? h('div.item-sub', null, when(f.visited_at)) : null,
    h('div.item-sub.clamp', null, f.notes || f.findings || '（无走访记录内容）'),
    f.concerns.length ? h('div.item-meta', null, h('span.tag.alt', null, `诉求 ${f.concerns.length} 条`)) : null,
  );
}

export function caseItem(c) {
  const f = c.record.fields;
  const hh = f.household ? rec(f.household) : null;
  return h(
    'a.item',
    { href: `#/case/${c.id}`, testid: 'case-item', 'data-id': c.id, 'data-status': c.status },
    h('div.item-title', null, f.title || '（无标题）'),
    h(
      'div.item-meta',
      null,
      h('span', { class: `status s-${c.status}` }, c.status_name),
      h('span.tag.alt', null, CASE_KIND_NAME[f.kind] || f.kind),
      isOverdue(c) ? h('span.tag.danger', null, '已超期') : null,
      h('span.muted', null, when(c.record.meta.created_at)),
    ),
    hh ? h('div.item-sub', null, householdName(hh)) : null,
  );
}
const CASE_KIND_NAME = { dispute: '矛盾纠纷', hazard: '安全隐患', petition: '信访', request: '群众诉求' };

export function householdView({ id }) {
  const l = rec(id);
  if (!l || l.record.type !== 'household') return h('section', null, topbar('住户', '#/households'), empty('本机没有这户的记录。'));
  const f = l.record.fields;
  const visits = records('visit_log').filter((v) => v.record.fields.household === id);
  const cases = records('case').filter((c) => c.record.fields.household === id);
  const promises = records('promise').filter((p) => p.record.fields.household === id);
  const idShown = h('span', null, maskId(f.id_number));
  return h(
    'section',
    null,
    topbar(householdName(l), '#/households', h('button.link', { type: 'button', testid: 'household-edit', onclick: () => go(`#/household/${id}/edit`) }, '编辑')),
    h(
      'div.card',
      null,
      h('div.big', null, f.address || '（未填写地址）'),
      f.tags.length ? h('div.item-meta', null, f.tags.map((t) => h('span.tag', null, t))) : null,
      h(
        'dl.facts',
        null,
        h('dt', null, '户主'),
        h('dd', null, f.head || '—'),
        f.phone ? [h('dt', null, '电话'), h('dd', null, h('a', { href: `tel:${f.phone}` }, f.phone))] : null,
        f.id_number
          ? [
              h('dt', null, '身份证'),
              h(
                'dd',
                null,
                idShown,
                h('button.link', { type: 'button', onclick: (e) => ((idShown.textContent = f.id_number), e.target.remove()) }, '显示'),
              ),
            ]
          : null,
        f.members.length
          ? [
              h('dt', null, '成员'),
              h('dd', null, f.members.map((m) => h('div', null, `${m.name}${m.relation ? `（${m.relation}）` : ''}`, m.phone ? [' ', h('a', { href: `tel:${m.phone}` }, m.phone)] : null))),
            ]
          : null,
        f.notes ? [h('dt', null, '备注'), h('dd.pre', null, f.notes)] : null,
      ),
    ),
    h('button.btn.primary.big', { type: 'button', testid: 'household-visit', onclick: () => go(`#/visit/new?household=${id}`) }, '记录走访'),
    h('button.btn.wide', { type: 'button', testid: 'household-report-case', onclick: () => go(`#/case/new?household=${id}`) }, '上报事件'),
    h('h2', null, `走访记录（${visits.length}）`),
    h('div.list', null, visits.length ? visits.map((v) => visitItem(v, false)) : empty('还没有走访记录')),
    cases.length ? [h('h2', null, `相关事件（${cases.length}）`), h('div.list', null, cases.map(caseItem))] : null,
    h('h2', null, `承诺事项（${promises.length}）`),
    h('div.list', null, promises.map(promiseItem)),
    promiseForm(l),
  );
}

function promiseItem(p) {
  const f = p.record.fields;
  const out = p.record.outcomes[p.record.outcomes.length - 1];
  const overdue = !out && f.due_at < Date.now();
  const act = (kept) => async () => {
    const note = kept
      ? (await ask({ title: '确认已践诺', text: f.content, ok: '已践诺' })) && ''
      : await ask({ title: '未能践诺', text: '请说明原因', input: '原因', ok: '保存' });
    if (note == null || note === false) return;
    if (attempt(() => S.phone.recordPromiseOutcome(p.id, kept, note, Date.now())) && (await saved())) S.refresh();
  };
  return h(
    'div.item',
    { testid: 'promise-item' },
    h('div.item-title', null, f.content),
    h(
      'div.item-meta',
      null,
      h('span.muted', null, `期限 ${dateOnly(f.due_at)}`),
      out ? h('span', { class: out.kept ? 'tag ok' : 'tag danger' }, out.kept ? '已践诺' : '未践诺') : h('span', { class: overdue ? 'tag danger' : 'tag alt' }, overdue ? '已超期' : '待落实'),
    ),
    out && out.note ? h('div.item-sub', null, out.note) : null,
    out
      ? null
      : h(
          'div.row',
          null,
          h('button.btn', { type: 'button', testid: 'promise-kept', onclick: act(true) }, '已践诺'),
          h('button.btn', { type: 'button', testid: 'promise-not-kept', onclick: act(false) }, '未践诺'),
        ),
  );
}

function promiseForm(l) {
  const content = h('textarea.input', { rows: 2, placeholder: '向群众承诺的事项', testid: 'promise-content' });
  const due = h('input.input', { type: 'date', value: toLocalInput(Date.now() + 7 * 86_400_000, false), testid: 'promise-due' });
  const form = h(
    'div.card.hidden',
    null,
    field('承诺内容', content),
    field('践诺期限', due),
    h(
      'button.btn.primary.wide',
      {
        type: 'button',
        testid: 'promise-save',
        onclick: async () => {
          if (!content.value.trim()) return toast('请填写承诺内容', 'error');
          const dueAt = due.value ? new Date(`${due.value}T23:59:59`).getTime() : Date.now() + 7 * 86_400_000;
          const ok = attempt(() =>
            S.phone.create({ type: 'promise', content: content.value.trim(), household: l.id, due_at: dueAt }, gridOf(l.id), Date.now()),
          );
          if (ok && (await saved())) S.refresh();
        },
      },
      '保存承诺',
    ),
  );
  const open = h('button.btn.wide', { type: 'button', testid: 'promise-new', onclick: () => (form.classList.remove('hidden'), open.remove(), content.focus()) }, '＋ 新增承诺事项');
  return [open, form];
}

export function householdForm({ id }) {
  const l = id ? rec(id) : null;
  const f = l ? l.record.fields : { address: '', head: '', phone: '', id_number: '', members: [], tags: [], notes: '' };
  const address = h('input.input', { value: f.address, testid: 'household-address', placeholder: '如：东湖路12号3栋2单元401' });
  const head = h('input.input', { value: f.head, testid: 'household-head', placeholder: '户主姓名' });
  const phone = h('input.input', { type: 'tel', value: f.phone, testid: 'household-phone', inputmode: 'tel' });
  const idNumber = h('input.input', { value: f.id_number, testid: 'household-id-number', maxlength: 18 });
  const notes = h('textarea.input', { rows: 3, value: f.notes, testid: 'household-notes' });
  const tags = new Set(f.tags);
  const tagChips = h(
    'div.chips',
    null,
    [...new Set([...DEFAULT_TAGS, ...f.tags])].map((t) =>
      h(
        'button.chip',
        {
          type: 'button',
          'aria-pressed': tags.has(t) ? 'true' : 'false',
          testid: `household-tag-${t}`,
          onclick: (e) => {
            tags.has(t) ? tags.delete(t) : tags.add(t);
            e.currentTarget.setAttribute('aria-pressed', tags.has(t) ? 'true' : 'false');
          },
        },
        t,
      ),
    ),
  );
  const picker = l ? null : gridPicker('household-grid');
  const save = async () => {
    if (!address.value.trim() && !head.value.trim()) return toast('请填写地址或户主姓名', 'error');
    const fields = {
      address: address.value.trim(),
      head: head.value.trim(),
      phone: phone.value.trim(),
      id_number: idNumber.value.trim(),
      members: f.members,
      tags: [...tags],
      notes: notes.value,
    };
    let newId = id;
    if (l) {
      if (!attempt(() => S.phone.update(id, fields, Date.now()))) return;
    } else {
      const grid = gridOf(null, picker);
      if (grid === undefined) return toast('请选择网格', 'error');
      const r = attempt(() => S.phone.create({ type: 'household', ...fields }, grid, Date.now()));
      if (!r) return;
      newId = r.value;
    }
    if (await saved()) {
      if (l) back(`#/household/${id}`);
      else location.replace(`#/household/${newId}`);
    }
  };
  return h(
    'form.section',
    { onsubmit: (e) => (e.preventDefault(), save()) },
    topbar(l ? '编辑住户' : '新增住户', l ? `#/household/${id}` : '#/households'),
    picker && field('所属网格', picker),
    field('地址', address),
    field('户主', head),
    field('联系电话', phone),
    field('身份证号', idNumber, '个人信息，仅用于核实身份'),
    h('div.field', null, h('span.label', null, '标签'), tagChips),
    field('备注', notes),
    h('button.btn.primary.big', { type: 'submit', testid: 'household-save' }, '保存'),
  );
}
