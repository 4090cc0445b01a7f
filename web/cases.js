// 事件: cases by status, one case (status, follow-ups, moves), and the report form.

import { S, assigneeOf, attempt, back, empty, explain, go, gridOf, gridPicker, householdName, isOverdue, rec, records, saved, topbar } from './core.js';
import { caseItem } from './households.js';
import { CASE_KIND, SATISFACTION, STATUS, ask, chips, dateOnly, field, h, toLocalInput, toast, when } from './ui.js';
import {
  choosePerson, conflictsCard, draftOffer, draftsOf, householdPicker, loadDraft, newRecordId, once, peopleFor, personName, placeName,
  saveRecord, track, visible, voidButton, voidOf, voidedNotice, voidedToggle,
} from './forms.js';
import { addFollowUp, attachPhotos, photoPicker, photoStrip, photosOf } from './photos.js';

const OPEN = ['reported', 'accepted', 'assigned', 'in_progress'];
let statusFilter = 'open';

let showVoided = false;

function describeCaseDraft(d) {
  const v = d.values;
  return [v.kind ? CASE_KIND[v.kind] : null, v.title || v.description].filter(Boolean).join('：');
}

export function casesView() {
  const every = records('case');
  const all = every.filter((c) => !voidOf(c));
  const count = (s) => all.filter((c) => c.status === s).length;
  const groups = {
    open: ['未办结', (c) => OPEN.includes(c.status)],
    all: ['全部', () => true],
    ...Object.fromEntries(Object.entries(STATUS).map(([k, name]) => [k, [name, (c) => c.status === k]])),
  };
  const [, test] = groups[statusFilter] || groups.all;
  const shown = visible(every, showVoided).filter(test);
  // Overdue first, then newest.
  shown.sort((a, b) => (isOverdue(b) ? 1 : 0) - (isOverdue(a) ? 1 : 0));
  return h(
    'section',
    null,
    h('div.head', null, h('h1', null, '事件'), h('span.count', null, `共 ${all.length} 件`)),
    draftOffer(draftsOf('case', (d) => d.mode === 'new'), (d) => `#/case/new?draft=${d.id}`, describeCaseDraft),
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
    voidedToggle(every, showVoided, (on) => ((showVoided = on), S.refresh())),
    h('div.list', null, shown.length ? shown.map(caseItem) : empty(all.length ? '这一类没有事件' : '还没有事件')),
  );
}

const CASE_FIELDS = { title: '标题', kind: '事件类型', household: '涉及住户', due_at: '办理期限', visit: '来自走访' };

function showCaseField(field, v) {
  if (v == null || v === '') return '（空）';
  if (field === 'kind') return CASE_KIND[v] || v;
  if (field === 'due_at') return dateOnly(v);
  if (field === 'household' || field === 'visit') {
    const l = rec(v);
    return l ? (l.record.type === 'household' ? householdName(l) : when(l.record.fields.visited_at)) : '（本机没有这条记录）';
  }
  return String(v);
}

export function caseView({ id }) {
  const l = rec(id);
  if (!l || l.record.type !== 'case') return h('section', null, topbar('事件', '#/cases'), empty('本机没有这件事件的记录。'));
  const r = l.record;
  const f = r.fields;
  const hh = rec(f.household);
  const visit = rec(f.visit);
  const voided = voidOf(l);
  const moves = voided ? [] : attempt(() => S.phone.caseMoves(id))?.value || [];
  const assignee = assigneeOf(l);
  const afterEdit = async (edit, text) => {
    if (attempt(edit) && (await saved(text))) S.refresh();
  };

  const move = async (m) => {
    if (m.kind === 'reopen') {
      const reason = await ask({ title: `退回至「${m.name}」`, text: '重新办理需要说明原因', input: '退回原因', ok: '确认退回' });
      if (reason == null) return;
      if (attempt(() => S.phone.reopenCase(id, m.to, reason, Date.now())) && (await saved('已退回'))) S.refresh();
    } else if (m.to === 'assigned') {
      const person = await choosePerson('交办给谁？', `${f.title} · ${placeName(r.meta.grid)}`, peopleFor(r.meta.grid));
      if (!person) return;
      if (attempt(() => S.phone.moveCase(id, m.to, Date.now(), person)) && (await saved(`已交办给${personName(person)}`))) S.refresh();
    } else {
      if (!(await ask({ title: `标记为「${m.name}」？`, text: f.title, ok: m.name }))) return;
      if (attempt(() => S.phone.moveCase(id, m.to, Date.now())) && (await saved(`已标记为${m.name}`))) S.refresh();
    }
  };

  const advances = moves.filter((m) => m.kind === 'advance');
  const reopens = moves.filter((m) => m.kind === 'reopen');
  const moveButton = (m, testid, text, primary) => {
    const b = h(primary ? 'button.btn.primary' : 'button.btn', { type: 'button', testid }, text);
    b.addEventListener('click', once(b, () => move(m), '正在保存…'));
    return b;
  };
  return h(
    'section',
    null,
    topbar('事件详情', '#/cases', voided ? null : h('button.link', { type: 'button', testid: 'case-edit', onclick: () => go(`#/case/${id}/edit`) }, '编辑')),
    voidedNotice(l),
    conflictsCard(l, CASE_FIELDS, showCaseField, (edit) => afterEdit(edit, '已采用')),
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
        voided ? h('span.tag.danger', null, '已作废') : null,
      ),
      h(
        'dl.facts',
        null,
        h('dt', null, '上报'),
        h('dd', null, when(r.meta.created_at)),
        h('dt', null, '上报人'),
        h('dd', { testid: 'case-reporter' }, personName(r.meta.creator)),
        h('dt', null, '网格'),
        h('dd', { testid: 'record-grid' }, placeName(r.meta.grid)),
        assignee ? [h('dt', null, '承办人'), h('dd', { testid: 'case-assignee' }, personName(assignee))] : null,
        f.due_at ? [h('dt', null, '期限'), h('dd', null, dateOnly(f.due_at))] : null,
        hh ? [h('dt', null, '住户'), h('dd', null, h('a', { href: `#/household/${hh.id}` }, householdName(hh)))] : null,
        visit ? [h('dt', null, '走访'), h('dd', null, h('a', { href: `#/visit/${visit.id}` }, when(visit.record.fields.visited_at)))] : null,
        h('dt', null, '描述'),
        h('dd.pre', null, f.description || '—'),
      ),
      photoStrip(photosOf(l), 'case-photos'),
    ),
    voided
      ? null
      : advances.length || reopens.length
        ? h(
            'div.moves',
            null,
            advances.map((m, i) => moveButton(m, `case-move-${m.to}`, `→ ${m.name}`, i === 0)),
            reopens.length ? h('div.moves-label', null, '退回重新办理（需说明原因）') : null,
            reopens.map((m) => moveButton(m, `case-reopen-${m.to}`, `退回至${m.name}`, false)),
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
                h(
                  'div.item-meta',
                  null,
                  h('b.who', { testid: 'followup-by' }, personName(u.by)),
                  h('span.muted', null, when(u.at)),
                  u.satisfaction ? h('span', { class: `tag ${u.satisfaction === 'dissatisfied' ? 'danger' : 'ok'}` }, SATISFACTION[u.satisfaction]) : null,
                ),
                h('div.pre', null, u.note),
                photoStrip(photosOf(l, u.id), 'followup-photos'),
              ),
            )
        : empty('还没有跟进记录'),
    ),
    voided ? null : followUpForm(l),
    h('h2', null, '办理过程'),
    h(
      'ol.timeline',
      { testid: 'case-timeline' },
      [...r.status_log]
        .sort((a, b) => b.at - a.at)
        .map((e) =>
          h(
            'li',
            { testid: 'timeline-entry' },
            h('b', null, e.kind === 'reopen' ? `退回至${STATUS[e.to]}` : STATUS[e.to]),
            h('span.muted', null, ` ${when(e.at)} · ${personName(e.by)}`),
            e.assignee ? h('div', null, `承办人：${personName(e.assignee)}`) : null,
            e.reason ? h('div', null, `原因：${e.reason}`) : null,
          ),
        ),
      h('li', null, h('b', null, '已上报'), h('span.muted', null, ` ${when(r.meta.created_at)} · ${personName(r.meta.creator)}`)),
    ),
    voidButton(l, '事件', (edit) => afterEdit(edit, '已作废')),
  );
}

/** The 添加跟进 card: one follow-up per tap, its text kept as a draft until saved. */
function followUpForm(l) {
  const id = l.id;
  const kept = loadDraft('followup', id);
  const target = { id };
  const note = h('textarea.input', { rows: 3, placeholder: '处理进展、回访情况等', testid: 'followup-note', value: kept ? kept.values.note : '' });
  const sat = chips(SATISFACTION, kept ? kept.values.satisfaction : null, { testid: 'followup-satisfaction', allowNone: true, cols: 3 });
  const photos = photoPicker({ picked: (kept && kept.values.photos) || [], testid: 'followup-photos' });
  const read = () => ({ note: note.value, satisfaction: sat.value || null, photos: photos.value });
  const submit = h('button.btn.primary.wide', { type: 'button', testid: 'followup-save' }, '保存跟进');
  const card = h(
    'div.card',
    { testid: 'followup-form' },
    kept ? h('p.muted.small', { testid: 'draft-restored' }, `已恢复 ${when(kept.at)} 未保存的跟进草稿`) : null,
    h('div.field', null, h('span.label', null, '添加跟进'), note),
    h('div.field', null, h('span.label', null, '群众满意度（回访时选择）'), sat.el),
    h('div.field', null, h('span.label', null, '照片（可选）'), photos.el),
    submit,
  );
  if (kept) note.dataset.dirty = '1';
  submit.addEventListener(
    'click',
    once(submit, async () => {
      if (!note.value.trim()) {
        note.focus();
        return toast('请填写跟进内容', 'error');
      }
      await photos.ready();
      // The follow-up and its photos in one change: both kept, or neither.
      const made = await addFollowUp(id, note.value.trim(), sat.value || '', photos.value).then(
        () => true,
        (e) => {
          console.error(e);
          const m = explain(e);
          toast(/记录未保存/.test(m) ? m : `跟进未保存：${m}`, 'error'); // a storage failure says itself what happened
          return false;
        },
      );
      if (!made) return;
      if (await saved('跟进已保存')) {
        tracker.saved();
        S.refresh();
      }
    }),
  );
  const tracker = track(card, { name: 'followup', mode: 'edit', target, read, restored: !!kept, label: '跟进内容' });
  return card;
}

/**
 * Report a case (prefilled from a household and/or visit), or edit case `id`;
 * `draft` opens the kept draft of that record id. The record id is fixed when
 * the form opens, so a second 上报 updates the case the first one made.
 */
export function caseForm({ id, household, visit, draft }) {
  const l = id ? rec(id) : null;
  const kept = loadDraft('case', draft);
  const target = { id: kept ? kept.id : l ? id : newRecordId() };
  const v = rec(kept ? kept.values.visit : visit);
  const f = kept
    ? kept.values
    : l
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
  const hhPick = householdPicker(f.household, { testid: 'case-household' });
  const picker = l ? null : gridPicker('case-grid');
  const due = h('input.input', { type: 'date', value: f.due_at ? toLocalInput(f.due_at, false) : '', testid: 'case-due' });
  // Photos picked and not yet saved ride in the draft (their bytes are in IndexedDB).
  const photos = photoPicker({ attached: l ? photosOf(l) : [], picked: (kept && kept.values.photos) || [], testid: 'case-photos' });
  const read = () => ({
    kind: kind.value || null,
    title: title.value.trim(),
    description: description.value.trim(),
    household: hhPick.value || null,
    visit: f.visit || null,
    due_at: due.value ? new Date(`${due.value}T23:59:59`).getTime() : null,
    photos: photos.value,
  });
  const save = async () => {
    await photos.ready();
    if (!kind.value) return toast('请选择事件类型', 'error');
    if (!title.value.trim()) {
      title.focus();
      return toast('请填写事件标题', 'error');
    }
    const { photos: picked, ...fields } = read();
    const grid = l ? null : (gridOf(fields.household, picker) ?? (v ? v.record.meta.grid : undefined));
    if (grid === undefined && picker) {
      picker.focus();
      picker.scrollIntoView({ block: 'center' });
      return toast('请选择住户或网格', 'error');
    }
    if (!attempt(() => saveRecord(target, { type: 'case', ...fields }, grid ?? null))) return;
    const photoError = await attachPhotos(target.id, picked).then(() => null, (e) => e);
    if (photoError) {
      // The case is kept; the photos stay in the form to save again.
      console.error(photoError);
      if (await saved()) toast(`事件已保存，但照片未能添加：${explain(photoError)}。请再点一次保存。`, 'error');
      return;
    }
    if (!(await saved(l ? '已保存' : navigator.onLine ? '事件已上报' : '事件已保存，联网后自动上报'))) return;
    tracker.saved();
    if (l) back(`#/case/${id}`);
    else location.replace(`#/case/${target.id}`);
  };
  const submit = h('button.btn.primary.big', { type: 'submit', testid: 'case-save' }, l ? '保存' : '上报');
  const editDraft = l && !kept ? loadDraft('case', id) : null;
  const form = h(
    'form.section',
    { testid: 'case-form', 'data-record-id': target.id },
    topbar(l ? '编辑事件' : '上报事件', l ? `#/case/${id}` : v ? `#/visit/${v.id}` : '#/cases'),
    editDraft ? draftOffer([editDraft], (d) => `#/case/${id}/edit?draft=${d.id}`, describeCaseDraft) : null,
    !l && !kept ? draftOffer(draftsOf('case', (d) => d.mode === 'new' && d.id !== target.id), (d) => `#/case/new?draft=${d.id}`, describeCaseDraft) : null,
    kept ? h('p.banner.info.small', { testid: 'draft-restored' }, `已恢复 ${when(kept.at)} 保存的草稿，请检查后保存。`) : null,
    h('div.field', null, h('span.label', null, '事件类型'), kind.el),
    field('标题', title),
    field('描述', description),
    h('div.field', null, h('span.label', null, '涉及住户'), hhPick.el),
    picker && field('所属网格', picker, '不选住户时请选择网格'),
    field('办理期限（可选）', due),
    h('div.field', null, h('span.label', null, '照片（可选）'), photos.el),
    v ? h('p.muted', null, `来自 ${when(v.record.fields.visited_at)} 的走访`) : null,
    submit,
  );
  form.addEventListener('submit', once(submit, save));
  const tracker = track(form, { name: 'case', mode: l ? 'edit' : 'new', target, read, restored: !!kept, label: '事件内容' });
  return form;
}
