// 住户: my grid's households, one household with its visits, cases and promises, and the household form.

import { S, attempt, back, empty, go, gridOf, gridPicker, householdName, isGridPerson, isOverdue, rec, saved, topbar } from './core.js';
import { CASE_KIND, DEFAULT_TAGS, VISIT_KIND, ask, daysAgo, dateOnly, field, h, maskId, toLocalInput, toast, when } from './ui.js';
import {
  conflictsCard, draftOffer, draftsOf, householdRows, loadDraft, mayVoid, newRecordId, once, personName, placeName, rowName, saveRecord,
  searchHouseholds, track, voidButton, voidOf, voidedNotice, voidedToggle,
} from './forms.js';

const filter = { q: '', tag: '', voided: false };
const LIST_PAGE = 100;

/** household id -> newest visited_at, from the replica's record headers (no visit log is parsed). */
function lastVisits() {
  return new Map(Object.entries(S.phone.lastVisits()));
}

export function householdsView() {
  const every = householdRows();
  const all = filter.voided ? every : every.filter((r) => !r.voided);
  const last = lastVisits();
  const tags = [...new Set([...DEFAULT_TAGS.slice(0, 3), ...all.flatMap((r) => r.tags)])];
  const list = h('div.list', { testid: 'households-list' });
  const count = h('span.count');
  let limit = LIST_PAGE;

  const draw = () => {
    const tagged = filter.tag ? all.filter((r) => r.tags.includes(filter.tag)) : all;
    const { total, shown } = searchHouseholds(tagged, filter.q, limit);
    count.textContent = filter.q || filter.tag ? `${total} / ${all.length} 户` : `共 ${all.length} 户`;
    list.replaceChildren(...shown.map((r) => householdItem(r, last.get(r.id))));
    if (!shown.length) list.append(empty(all.length ? '没有符合条件的住户' : '本机还没有住户数据。联网同步后会自动下载本网格的住户。'));
    if (total > shown.length) {
      list.append(h('button.btn.wide', { type: 'button', testid: 'households-more', onclick: () => ((limit += LIST_PAGE), draw()) }, `显示更多（还有 ${total - shown.length} 户）`));
    }
    for (const c of chipRow.children) c.setAttribute('aria-pressed', c.dataset.tag === filter.tag ? 'true' : 'false');
  };

  const search = h('input.input.search', {
    type: 'search',
    placeholder: '搜索户主、成员、地址或电话尾号',
    value: filter.q,
    testid: 'households-search',
    enterkeyhint: 'search',
    oninput: (e) => {
      filter.q = e.target.value;
      limit = LIST_PAGE;
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
    draftOffer(draftsOf('household', (d) => d.mode === 'new'), (d) => `#/household/new?draft=${d.id}`, (d) => [d.values.head, d.values.address].filter(Boolean).join('　')),
    search,
    chipRow,
    voidedToggle(every.map((r) => ({ voided: r.voided })), filter.voided, (on) => ((filter.voided = on), S.refresh())),
    list,
    h('button.btn.wide', { type: 'button', testid: 'household-new', onclick: () => go('#/household/new') }, '＋ 新增住户'),
  );
}

function householdItem(r, lastVisit) {
  return h(
    'a.item',
    { href: `#/household/${r.id}`, testid: 'household-item', 'data-id': r.id, class: r.voided ? 'is-voided' : null },
    h('div.item-title', null, rowName(r), r.members.length ? h('span.muted.normal', null, `等${r.members.length + 1}人`) : null),
    h('div.item-sub', null, r.address || '（未填写地址）'),
    h(
      'div.item-meta',
      null,
      r.voided ? h('span.tag.danger', null, '已作废') : null,
      r.tags.map((t) => h('span.tag', null, t)),
      h('span', { class: lastVisit ? 'muted' : 'warn' }, lastVisit ? `上次走访 ${daysAgo(lastVisit)}` : '尚未走访'),
    ),
  );
}

export function visitItem(v, showHousehold) {
  const f = v.record.fields;
  const hh = showHousehold && f.household ? rec(f.household) : null;
  return h(
    'a.item',
    { href: `#/visit/${v.id}`, testid: 'visit-item', 'data-id': v.id, class: voidOf(v) ? 'is-voided' : null },
    h(
      'div.item-title',
      null,
      hh ? householdName(hh) : when(f.visited_at),
      f.kind ? h('span.kind', null, VISIT_KIND[f.kind]) : null,
    ),
    hh ? h('div.item-sub', null, when(f.visited_at)) : null,
    h('div.item-sub.clamp', null, f.notes || f.findings || '（无走访记录内容）'),
    f.concerns.length || voidOf(v)
      ? h('div.item-meta', null, voidOf(v) ? h('span.tag.danger', null, '已作废') : null, f.concerns.length ? h('span.tag.alt', null, `诉求 ${f.concerns.length} 条`) : null)
      : null,
  );
}

export function caseItem(c) {
  const f = c.record.fields;
  const hh = f.household ? rec(f.household) : null;
  return h(
    'a.item',
    { href: `#/case/${c.id}`, testid: 'case-item', 'data-id': c.id, 'data-status': c.status, class: voidOf(c) ? 'is-voided' : null },
    h('div.item-title', null, f.title || '（无标题）'),
    h(
      'div.item-meta',
      null,
      voidOf(c) ? h('span.tag.danger', null, '已作废') : null,
      h('span', { class: `status s-${c.status}` }, c.status_name),
      h('span.tag.alt', null, CASE_KIND[f.kind] || f.kind),
      isOverdue(c) ? h('span.tag.danger', null, '已超期') : null,
      h('span.muted', null, when(c.record.meta.created_at)),
    ),
    // Who reported it, and where (for people above a grid: which grid).
    h(
      'div.item-sub',
      { testid: 'case-item-who' },
      [personName(c.record.meta.creator), isGridPerson() ? null : placeName(c.record.meta.grid), hh ? householdName(hh) : null].filter(Boolean).join(' · '),
    ),
  );
}

export function householdView({ id }) {
  const l = rec(id);
  if (!l || l.record.type !== 'household') return h('section', null, topbar('住户', '#/households'), empty('本机没有这户的记录。'));
  const f = l.record.fields;
  const voided = voidOf(l);
  // Only this household's records are read (the phone finds them without parsing the others).
  const visits = S.phone.recordsOf(id, 'visit_log').filter((v) => !voidOf(v));
  const cases = S.phone.recordsOf(id, 'case').filter((c) => !voidOf(c));
  const allPromises = S.phone.recordsOf(id, 'promise');
  const promises = promiseFilter.voided ? allPromises : allPromises.filter((p) => !voidOf(p));
  const idShown = h('span', null, maskId(f.id_number));
  const afterEdit = async (edit, text) => {
    if (attempt(edit) && (await saved(text))) S.refresh();
  };
  return h(
    'section',
    null,
    topbar(householdName(l), '#/households', voided ? null : h('button.link', { type: 'button', testid: 'household-edit', onclick: () => go(`#/household/${id}/edit`) }, '编辑')),
    voidedNotice(l),
    conflictsCard(l, HOUSEHOLD_FIELDS, undefined, (edit) => afterEdit(edit, '已采用')),
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
        h('dt', null, '网格'),
        h('dd', { testid: 'record-grid' }, placeName(l.record.meta.grid)),
        h('dt', null, '登记人'),
        h('dd', null, personName(l.record.meta.creator)),
        f.notes ? [h('dt', null, '备注'), h('dd.pre', null, f.notes)] : null,
      ),
    ),
    membersSection(l, voided),
    voided
      ? null
      : [
          h('button.btn.primary.big', { type: 'button', testid: 'household-visit', onclick: () => go(`#/visit/new?household=${id}`) }, '记录走访'),
          h('button.btn.wide', { type: 'button', testid: 'household-report-case', onclick: () => go(`#/case/new?household=${id}`) }, '上报事件'),
        ],
    h('h2', null, `走访记录（${visits.length}）`),
    h('div.list', null, visits.length ? visits.map((v) => visitItem(v, false)) : empty('还没有走访记录')),
    cases.length ? [h('h2', null, `相关事件（${cases.length}）`), h('div.list', null, cases.map(caseItem))] : null,
    h('div.list-head', null, h('h2', null, `承诺事项（${promises.filter((p) => !voidOf(p)).length}）`), voidedToggle(allPromises, promiseFilter.voided, (on) => ((promiseFilter.voided = on), S.refresh()))),
    h('div.list', null, promises.map(promiseItem)),
    voided ? null : promiseForm(l),
    voidButton(l, '住户', (edit) => afterEdit(edit, '已作废')),
  );
}

const promiseFilter = { voided: false };
const promiseOpen = new Set(); // households whose 新增承诺事项 form is open
const HOUSEHOLD_FIELDS = { address: '地址', head: '户主', phone: '联系电话', id_number: '身份证号' };

// ------------------------------------------------------------------ members

const MEMBER_TAGS = ['困难群众', '独居老人', '残疾人', '留守儿童', '低保户', '重点人员'];

/** The household's members: each can be edited or removed, and members added, offline. */
function membersSection(l, voided) {
  const members = l.record.fields.members || [];
  const canEdit = !voided && typeof S.phone.addMember === 'function';
  const box = h('div.card.members', { testid: 'members' });
  const paint = () => {
    box.replaceChildren(
      ...[
      h('div.members-head', null, h('b', null, `家庭成员（${members.length}）`)),
      members.length ? null : h('p.muted.small', null, '还没有登记家庭成员'),
      ...members.map((m) => memberItem(m)),
      canEdit ? h('button.btn.wide', { type: 'button', testid: 'member-add', onclick: () => box.append(memberForm(l, null, paint)) }, '＋ 添加成员') : null,
      ].filter(Boolean),
    );
  };
  const memberItem = (m) => {
    const row = h(
      'div.member',
      { testid: 'member-item', 'data-id': m.id || '' },
      h(
        'div.member-text',
        null,
        h('b', { testid: 'member-name' }, m.name || '（未填写姓名）'),
        m.relation ? h('span.muted', null, `（${m.relation}）`) : null,
        h(
          'div.small.muted',
          null,
          [m.id_number ? `身份证 ${maskId(m.id_number)}` : null, m.phone ? `电话 ${m.phone}` : null].filter(Boolean).join(' · ') || null,
        ),
        (m.tags || []).length ? h('div.item-meta', null, m.tags.map((t) => h('span.tag', null, t))) : null,
      ),
      canEdit && m.id
        ? h(
            'div.member-actions',
            null,
            h('button.btn.small', { type: 'button', testid: 'member-edit', onclick: () => row.replaceWith(memberForm(l, m, paint)) }, '编辑'),
            h(
              'button.btn.small.danger',
              {
                type: 'button',
                testid: 'member-remove',
                onclick: async () => {
                  if (!(await ask({ title: `删除成员“${m.name}”？`, text: '该成员将从这户的成员中移除。', ok: '删除', danger: true }))) return;
                  if (attempt(() => S.phone.removeMember(l.id, m.id)) && (await saved('已删除成员'))) S.refresh();
                },
              },
              '删除',
            ),
          )
        : null,
    );
    return row;
  };
  paint();
  return box;
}

/** Adds a member (`m` null) or edits member `m`, in place. */
function memberForm(l, m, cancel) {
  const v = m || { name: '', relation: '', id_number: '', phone: '', tags: [] };
  const name = h('input.input', { value: v.name, testid: 'member-name-input', placeholder: '姓名' });
  const relation = h('input.input', { value: v.relation, testid: 'member-relation', placeholder: '如：配偶、子女、父母', list: 'gs-relations' });
  const idNumber = h('input.input', { value: v.id_number, testid: 'member-id-number', maxlength: 18 });
  const phone = h('input.input', { type: 'tel', value: v.phone, testid: 'member-phone', inputmode: 'tel' });
  const tags = new Set(v.tags || []);
  const tagChips = h(
    'div.chips',
    null,
    [...new Set([...MEMBER_TAGS, ...tags])].map((t) =>
      h(
        'button.chip.small',
        {
          type: 'button',
          'aria-pressed': tags.has(t) ? 'true' : 'false',
          testid: `member-tag-${t}`,
          onclick: (e) => {
            tags.has(t) ? tags.delete(t) : tags.add(t);
            e.currentTarget.setAttribute('aria-pressed', tags.has(t) ? 'true' : 'false');
          },
        },
        t,
      ),
    ),
  );
  const submit = h('button.btn.primary', { type: 'button', testid: 'member-save' }, '保存成员');
  const form = h(
    'div.member-form',
    { testid: 'member-form' },
    h('datalist', { id: 'gs-relations' }, ['配偶', '子女', '父母', '孙子女', '兄弟姐妹', '其他'].map((r) => h('option', { value: r }))),
    field('姓名', name),
    field('与户主关系', relation),
    field('身份证号', idNumber),
    field('联系电话', phone),
    h('div.field', null, h('span.label', null, '标签'), tagChips),
    h('div.row', null, h('button.btn', { type: 'button', testid: 'member-cancel', onclick: () => cancel() }, '取消'), submit),
  );
  submit.addEventListener(
    'click',
    once(submit, async () => {
      if (!name.value.trim()) {
        name.focus();
        return toast('请填写成员姓名', 'error');
      }
      const fields = { name: name.value.trim(), relation: relation.value.trim(), id_number: idNumber.value.trim(), phone: phone.value.trim(), tags: [...tags] };
      const ok = m ? attempt(() => S.phone.updateMember(l.id, m.id, fields)) : attempt(() => S.phone.addMember(l.id, fields));
      if (ok && (await saved(m ? '成员已保存' : '已添加成员'))) S.refresh();
    }),
  );
  // Once the caller has put the form in place, before any later tap: a
  // timer here could move the focus after the person (or a test) had already
  // started typing in another field, sending their text into 姓名.
  queueMicrotask(() => name.isConnected && name.focus());
  return form;
}

// ----------------------------------------------------------------- promises

function promiseItem(p) {
  const f = p.record.fields;
  const outs = [...p.record.outcomes].sort((a, b) => a.at - b.at);
  const out = outs[outs.length - 1];
  const overdue = !out && f.due_at < Date.now();
  const voided = voidOf(p);
  const act = (kept) => async () => {
    const note = kept
      ? (await ask({ title: '确认已践诺', text: f.content, ok: '已践诺' })) && ''
      : await ask({ title: '未能践诺', text: '请说明原因', input: '原因', ok: '保存' });
    if (note == null || note === false) return;
    if (attempt(() => S.phone.recordPromiseOutcome(p.id, kept, note, Date.now())) && (await saved())) S.refresh();
  };
  const button = (testid, text, kept) => {
    const b = h('button.btn', { type: 'button', testid }, text);
    b.addEventListener('click', once(b, act(kept), text));
    return b;
  };
  return h(
    'div.item',
    { testid: 'promise-item', 'data-id': p.id, class: voided ? 'is-voided' : null },
    h('div.item-title', null, f.content),
    h(
      'div.item-meta',
      null,
      voided ? h('span.tag.danger', null, '已作废') : null,
      h('span.muted', null, `期限 ${dateOnly(f.due_at)}`),
      out ? h('span', { class: out.kept ? 'tag ok' : 'tag danger' }, out.kept ? '已践诺' : '未践诺') : h('span', { class: overdue ? 'tag danger' : 'tag alt' }, overdue ? '已超期' : '待落实'),
    ),
    h('div.item-sub.small', { testid: 'promise-who' }, `${personName(p.record.meta.creator)} 承诺于 ${when(p.record.meta.created_at)}`),
    outs.map((o) =>
      h('div.item-sub.small', { testid: 'promise-outcome' }, `${o.kept ? '已践诺' : '未践诺'} · ${personName(o.by)} · ${when(o.at)}${o.note ? `：${o.note}` : ''}`),
    ),
    voided ? voidedNotice(p) : null,
    out || voided ? null : h('div.row', null, button('promise-kept', '已践诺', true), button('promise-not-kept', '未践诺', false)),
    !voided && mayVoid(p) && typeof S.phone.void === 'function'
      ? h(
          'button.link.small',
          {
            type: 'button',
            testid: 'promise-void',
            onclick: async () => {
              const reason = await ask({ title: '作废此承诺事项？', text: '作废后不再计入践诺落实率。请说明原因，如“重复录入”。', input: '作废原因（必填）', ok: '作废', danger: true });
              if (reason == null) return;
              if (attempt(() => S.phone.void(p.id, reason, Date.now())) && (await saved('已作废'))) S.refresh();
            },
          },
          '作废',
        )
      : null,
  );
}

/** 新增承诺事项: its record id fixed when the page opens, its text kept as a draft. */
function promiseForm(l) {
  const kept = draftsOf('promise', (d) => d.ctx === l.id)[0] || null;
  const target = { id: kept ? kept.id : newRecordId() };
  const v = kept ? kept.values : { content: '', due: toLocalInput(Date.now() + 7 * 86_400_000, false) };
  const content = h('textarea.input', { rows: 2, placeholder: '向群众承诺的事项', testid: 'promise-content', value: v.content });
  const due = h('input.input', { type: 'date', value: v.due, testid: 'promise-due' });
  const submit = h('button.btn.primary.wide', { type: 'button', testid: 'promise-save' }, '保存承诺');
  const form = h(
    'div.card',
    { testid: 'promise-form', class: kept || promiseOpen.has(l.id) ? null : 'hidden' },
    kept ? h('p.muted.small', { testid: 'draft-restored' }, `已恢复 ${when(kept.at)} 未保存的承诺草稿`) : null,
    field('承诺内容', content),
    field('践诺期限', due),
    submit,
  );
  const read = () => ({ content: content.value, due: due.value });
  submit.addEventListener(
    'click',
    once(submit, async () => {
      if (!content.value.trim()) return toast('请填写承诺内容', 'error');
      const dueAt = due.value ? new Date(`${due.value}T23:59:59`).getTime() : Date.now() + 7 * 86_400_000;
      const ok = attempt(() => saveRecord(target, { type: 'promise', content: content.value.trim(), household: l.id, due_at: dueAt }, gridOf(l.id)));
      if (ok && (await saved())) {
        tracker.saved();
        promiseOpen.delete(l.id);
        S.refresh();
      }
    }),
  );
  const tracker = track(form, { name: 'promise', mode: 'new', target, read, ctx: l.id, restored: !!kept, label: '承诺事项' });
  if (kept) content.dataset.dirty = '1';
  // Opened stays opened when the page is redrawn (a sync brought news).
  const open =
    kept || promiseOpen.has(l.id)
      ? null
      : h(
          'button.btn.wide',
          { type: 'button', testid: 'promise-new', onclick: () => (promiseOpen.add(l.id), form.classList.remove('hidden'), open.remove(), content.focus()) },
          '＋ 新增承诺事项',
        );
  return [open, form];
}

/** New household or edit of household `id`; `draft` opens the kept draft of that record id. */
export function householdForm({ id, draft }) {
  const l = id ? rec(id) : null;
  const kept = loadDraft('household', draft);
  const target = { id: kept ? kept.id : l ? id : newRecordId() };
  const f = kept ? kept.values : l ? l.record.fields : { address: '', head: '', phone: '', id_number: '', tags: [], notes: '' };
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
  const read = () => ({
    address: address.value.trim(),
    head: head.value.trim(),
    phone: phone.value.trim(),
    id_number: idNumber.value.trim(),
    tags: [...tags],
    notes: notes.value,
  });
  const save = async () => {
    if (!address.value.trim() && !head.value.trim()) return toast('请填写地址或户主姓名', 'error');
    // Members are edited one by one on the household page (merged per member).
    const existing = rec(target.id);
    const members = existing ? existing.record.fields.members : [];
    const fields = typeof S.phone.addMember === 'function' ? read() : { ...read(), members };
    const grid = l ? null : gridOf(null, picker);
    if (grid === undefined) return toast('请选择网格', 'error');
    if (!attempt(() => saveRecord(target, { type: 'household', ...fields }, grid))) return;
    if (await saved()) {
      tracker.saved();
      if (l) back(`#/household/${id}`);
      else location.replace(`#/household/${target.id}`);
    }
  };
  const submit = h('button.btn.primary.big', { type: 'submit', testid: 'household-save' }, '保存');
  const editDraft = l && !kept ? loadDraft('household', id) : null;
  const form = h(
    'form.section',
    { testid: 'household-form', 'data-record-id': target.id },
    topbar(l ? '编辑住户' : '新增住户', l ? `#/household/${id}` : '#/households'),
    editDraft ? draftOffer([editDraft], (d) => `#/household/${id}/edit?draft=${d.id}`, (d) => [d.values.head, d.values.address].filter(Boolean).join('　')) : null,
    kept ? h('p.banner.info.small', { testid: 'draft-restored' }, `已恢复 ${when(kept.at)} 保存的草稿，请检查后保存。`) : null,
    picker && field('所属网格', picker),
    field('地址', address),
    field('户主', head),
    field('联系电话', phone),
    field('身份证号', idNumber, '个人信息，仅用于核实身份'),
    h('div.field', null, h('span.label', null, '标签'), tagChips),
    field('备注', notes),
    submit,
  );
  form.addEventListener('submit', once(submit, save));
  const tracker = track(form, { name: 'household', mode: l ? 'edit' : 'new', target, read, restored: !!kept, label: '住户信息' });
  return form;
}
