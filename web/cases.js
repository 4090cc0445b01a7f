// 事件: cases by status, one case (status, follow-ups, moves), and the report form.

import { S, attempt, back, empty, go, gridOf, gridPicker, householdName, householdSelect, isOverdue, me, rec, records, saved, topbar } from './core.js';
import { caseItem } from './households.js';
import { CASE_KIND, SATISFACTION, STATUS, ask, chips, dateOnly, field, h, toLocalInput, toast, when } from './ui.js';

const OPEN = ['reported', 'accepted', 'assigned', 'in_progress'];
let statusFilter = 'open';

export function casesView() {
  const all = records('case');
  const count = (s) => all.filter((c) => c.status === s).length;
  const groups = {
    open: ['未办结', (c) => OPEN.includes(c.status)],
    all: ['全部', () => true],
    ...Object.fromEntries(Object.entries(STATUS).map(([k, name]) => [k, [name, (c) => c.status === k]])),
  };
  const [, test] = groups[statusFilter] || groups.all;
  const shown = all.filter(test);
  // Overdue first, then newest.
  shown.sort((a, b) => (isOverdue(b) ? 1 : 0) - (isOverdue(a) ? 1 : 0));
  return h(
    'section',
    null,
    h('div.head', null, h('h1', null, '事件'), h('span.count', null, `共 ${all.length} 件`)),
    h('button.btn.primary.big', { type: 'button', testid: 'case-new', onclick: () => go('#/case/new') }, '上报事件'),
    h(
      'div.chips.scroll',
      { role: 'tablist' },
      Object.entries(groups).map(([k, [name, t]]) =>
        STATUS[k] && !count(k) && k !== statusFilter ? null : h(
          'button.chip',
          {
            type: 'button',
            role: 'tab',
            testid: `case-filter-${k}`,
            'aria-selected': k === statusFilter ? 'true' : 'false',
            onclick: () => ((statusFilter = k), S.refresh()),
          },
          `${name} ${k === 'all' ? all.length : k === 'open' ? all.filter(t).length : count(k)}`,
        ),
      ),
    ),
    h('div.list', null, shown.length ? shown.map(caseItem) : empty(all.length ? '这一类没有事件' : '还没有事件')),
  );
}

const isMine = (by) => by === me().person;

export function caseView({ id }) {
  const l = rec(id);
  if (!l || l.record.type !== 'case') return h('section', null, topbar('事件', '#/cases'), empty('本机没有这件事件的记录。'));
  const r = l.record;
  const f = r.fields;
  const hh = rec(f.household);
  const visit = rec(f.visit);
  const moves = attempt(() => S.phone.caseMoves(id))?.value || [];

  const move = async (m) => {
    if (m.kind === 'reopen') {
      const reason = await ask({ title: `退回至「${m.name}」`, text: '重新办理需要说明原因', input: '退回原因', ok: '确认退回' });
      if (reason == null) return;
      if (attempt(() => S.phone.reopenCase(id, m.to, reason, Date.now())) && (await saved('已退回'))) S.refresh();
    } else {
      if (!(await ask({ title: `标记为「${m.name}」？`, text: f.title, ok: m.name }))) return;
      if (attempt(() => S.phone.moveCase(id, m.to, Date.now())) && (await saved(`已标记为${m.name}`))) S.refresh();
    }
  };

  const note = h('textarea.input', { rows: 3, placeholder: '处理进展、回访情况等', testid: 'followup-note' });
  const sat = chips(SATISFACTION, null, { testid: 'followup-satisfaction', allowNone: true, cols: 3 });
  const addFollowUp = async () => {
    if (!note.value.trim()) {
      note.focus();
      return toast('请填写跟进内容', 'error');
    }
    if (!attempt(() => S.phone.addFollowUp(id, note.value.trim(), sat.value || '', Date.now()))) return;
    delete note.dataset.dirty;
    if (await saved('跟进已保存')) S.refresh();
  };

  const advances = moves.filter((m) => m.kind === 'advance');
  const reopens = moves.filter((m) => m.kind === 'reopen');
  return h(
    'section',
    null,
    topbar('事件详情', '#/cases', h('button.link', { type: 'button', testid: 'case-edit', onclick: () => go(`#/case/${id}/edit`) }, '编辑')),
    h(
      'div.card',
      null,
      h('div.big', { testid: 'case-detail-title' }, f.title),
      h(
        'div.item-meta',
        null,
        h('span', { class: `status s-${l.status}`, testid: 'case-status' }, l.status_name),
        h('span.tag.alt', null, CASE_KIND[f.kind] || f.kind),
        isOverdue(l) ? h('span.tag.danger', null, '已超期') : null,
      ),
      h(
        'dl.facts',
        null,
        h('dt', null, '上报'),
        h('dd', null, when(r.meta.created_at), isMine(r.meta.creator) ? '（我）' : ''),
        f.due_at ? [h('dt', null, '期限'), h('dd', null, dateOnly(f.due_at))] : null,
        hh ? [h('dt', null, '住户'), h('dd', null, h('a', { href: `#/household/${hh.id}` }, householdName(hh)))] : null,
        visit ? [h('dt', null, '走访'), h('dd', null, h('a', { href: `#/visit/${visit.id}` }, when(visit.record.fields.visited_at)))] : null,
        h('dt', null, '描述'),
        h('dd.pre', null, f.description || '—'),
      ),
    ),
    advances.length || reopens.length
      ? h(
          'div.moves',
          null,
          advances.map((m, i) => h(i === 0 ? 'button.btn.primary' : 'button.btn', { type: 'button', testid: `case-move-${m.to}`, onclick: () => move(m) }, `→ ${m.name}`)),
          reopens.length ? h('div.moves-label', null, '退回重新办理（需说明原因）') : null,
          reopens.map((m) => h('button.btn', { type: 'button', testid: `case-reopen-${m.to}`, onclick: () => move(m) }, `退回至${m.name}`)),
        )
      : h('p.muted', null, '当前没有需要您处理的状态变更。'),
    h('h2', null, `跟进记录（${r.follow_ups.length}）`),
    h(
      'div.list',
      null,
      r.follow_ups.length
        ? [...r.follow_ups]
            .sort((a, b) => b.at - a.at)
            .map((u) =>
              h(
                'div.item',
                { testid: 'followup-item' },
                h('div.item-meta', null, h('span.muted', null, when(u.at), isMine(u.by) ? ' · 我' : ''), u.satisfaction ? h('span', { class: `tag ${u.satisfaction === 'dissatisfied' ? 'danger' : 'ok'}` }, SATISFACTION[u.satisfaction]) : null),
                h('div.pre', null, u.note),
              ),
            )
        : empty('还没有跟进记录'),
    ),
    h(
      'div.card',
      null,
      h('div.field', null, h('span.label', null, '添加跟进'), note),
      h('div.field', null, h('span.label', null, '群众满意度（回访时选择）'), sat.el),
      h('button.btn.primary.wide', { type: 'button', testid: 'followup-save', onclick: addFollowUp }, '保存跟进'),
    ),
    h('h2', null, '办理过程'),
    h(
      'ol.timeline',
      null,
      [...r.status_log]
        .sort((a, b) => b.at - a.at)
        .map((e) =>
          h(
            'li',
            null,
            h('b', null, e.kind === 'reopen' ? `退回至${STATUS[e.to]}` : STATUS[e.to]),
            h('span.muted', null, ` ${when(e.at)}${isMine(e.by) ? ' · 我' : ''}`),
            e.reason ? h('div', null, `原因：${e.reason}`) : null,
          ),
        ),
      h('li', null, h('b', null, '已上报'), h('span.muted', null, ` ${when(r.meta.created_at)}${isMine(r.meta.creator) ? ' · 我' : ''}`)),
    ),
  );
}

/** Report a case (prefilled from a household and/or visit), or edit case `id`. */
export function caseForm({ id, household, visit }) {
  const l = id ? rec(id) : null;
  const v = rec(visit);
  const f = l
    ? l.record.fields
    : {
        kind: null,
        title: v?.record.fields.concerns[0] || '',
        description: v ? [v.record.fields.findings, ...v.record.fields.concerns].filter(Boolean).join('\n') : '',
        household: household || v?.record.fields.household || null,
        visit: visit || null,
        due_at: null,
      };
  const kind = chips(CASE_KIND, f.kind, { testid: 'case-kind', cols: 4 });
  const title = h('input.input', { value: f.title, placeholder: '一句话说明，如：楼道堆放杂物', testid: 'case-title', maxlength: 60 });
  const description = h('textarea.input', { rows: 5, value: f.description, placeholder: '事件经过、涉及人员、现场情况等', testid: 'case-description' });
  const hhSel = householdSelect(f.household, 'case-household');
  const picker = l ? null : gridPicker('case-grid');
  const due = h('input.input', { type: 'date', value: f.due_at ? toLocalInput(f.due_at, false) : '', testid: 'case-due' });
  const save = async (e) => {
    e.preventDefault();
    if (!kind.value) return toast('请选择事件类型', 'error');
    if (!title.value.trim()) {
      title.focus();
      return toast('请填写事件标题', 'error');
    }
    const fields = {
      kind: kind.value,
      title: title.value.trim(),
      description: description.value.trim(),
      household: hhSel.value || null,
      visit: f.visit,
      due_at: due.value ? new Date(`${due.value}T23:59:59`).getTime() : null,
    };
    let caseId = id;
    if (l) {
      if (!attempt(() => S.phone.update(id, fields, Date.now()))) return;
    } else {
      const grid = gridOf(fields.household, picker) ?? (v ? v.record.meta.grid : undefined);
      if (grid === undefined && picker) {
        picker.focus();
        picker.scrollIntoView({ block: 'center' });
        return toast('请选择住户或网格', 'error');
      }
      const r = attempt(() => S.phone.create({ type: 'case', ...fields }, grid ?? null, Date.now()));
      if (!r) return;
      caseId = r.value;
    }
    form.querySelectorAll('[data-dirty]').forEach((x) => delete x.dataset.dirty);
    if (!(await saved(l ? '已保存' : navigator.onLine ? '事件已上报' : '事件已保存，联网后自动上报'))) return;
    if (l) back(`#/case/${id}`);
    else location.replace(`#/case/${caseId}`);
  };
  const form = h(
    'form.section',
    { onsubmit: save },
    topbar(l ? '编辑事件' : '上报事件', l ? `#/case/${id}` : v ? `#/visit/${v.id}` : '#/cases'),
    h('div.field', null, h('span.label', null, '事件类型'), kind.el),
    field('标题', title),
    field('描述', description),
    field('涉及住户', hhSel),
    picker && field('所属网格', picker, '不选住户时请选择网格'),
    field('办理期限（可选）', due),
    v ? h('p.muted', null, `来自 ${when(v.record.fields.visited_at)} 的走访`) : null,
    h('button.btn.primary.big', { type: 'submit', testid: 'case-save' }, l ? '保存' : '上报'),
  );
  return form;
}
