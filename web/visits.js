// 走访: recent visits, recording a visit in a few taps, and one visit.

import { S, attempt, back, empty, explain, go, gridOf, gridPicker, householdName, rec, records, saved, topbar } from './core.js';
import { caseItem, visitItem } from './households.js';
import { VISIT_KIND, chips, field, h, toLocalInput, toast, when } from './ui.js';
import {
  conflictsCard, draftOffer, draftsOf, householdPicker, loadDraft, newRecordId, once, personName, placeName, saveRecord, track,
  visible, voidButton, voidOf, voidedNotice, voidedToggle,
} from './forms.js';
import { attachPhotos, photoPicker, photoStrip, photosOf } from './photos.js';

const PAGE = 20; // visits read and listed at first; 显示更多 reads as many again
let shown = PAGE;

let showVoided = false;

/** What a visit draft is about, in a line. */
export function describeVisitDraft(d) {
  const v = d.values;
  const hh = rec(v.household);
  return [hh ? householdName(hh) : null, v.notes || v.findings || v.concerns[0]].filter(Boolean).join('：');
}

/**
 * The newest visits by visit time, a page at a time: only the visits listed
 * are read (the phone knows every visit's time without parsing it), so the
 * list opens as fast with years of visits as with a few.
 */
export function visitsView() {
  const { records: every, more } = S.phone.recent('visit_log', shown);
  const all = visible(every, showVoided);
  const times = S.phone.visitTimes();
  const today = new Date().setHours(0, 0, 0, 0);
  // Today's visits are few: read them to leave out voided ones. The total leaves out the voided ones listed.
  const nToday = times.filter(([, at]) => at >= today).map(([id]) => rec(id)).filter((v) => v && !voidOf(v)).length;
  const total = times.length - every.filter(voidOf).length;
  return h(
    'section',
    null,
    h('div.head', null, h('h1', null, '走访'), h('span.count', { testid: 'visit-count' }, `今天 ${nToday} 次 · 共 ${total} 次`)),
    draftOffer(draftsOf('visit', (d) => d.mode === 'new'), (d) => `#/visit/new?draft=${d.id}`, describeVisitDraft),
    h('button.btn.primary.big', { type: 'button', testid: 'visit-new', onclick: () => go('#/visit/new') }, '记录走访'),
    h('div.list-head', null, h('h2', null, '最近走访'), voidedToggle(every, showVoided, (on) => ((showVoided = on), S.refresh()))),
    h('div.list', { testid: 'visit-list' }, all.length ? all.map((v) => visitItem(v, true)) : more ? null : empty('还没有走访记录。点上方“记录走访”开始。')),
    more ? h('button.btn.wide', { type: 'button', testid: 'visits-more', onclick: () => ((shown += PAGE), S.refresh()) }, '显示更多') : null,
  );
}

const QUICK = ['家中情况正常', '身体状况良好', '生活有困难', '已宣传政策', '无诉求'];

/**
 * New visit (`household` preselected) or edit of visit `id`; `draft` opens
 * the kept draft of that record id. The record id is fixed when the form
 * opens, so a second submit updates the visit the first one made.
 */
export function visitForm({ id, household, draft }) {
  const l = id ? rec(id) : null;
  const kept = loadDraft('visit', draft);
  const target = { id: kept ? kept.id : l ? id : newRecordId() };
  const f = kept
    ? kept.values
    : l
      ? l.record.fields
      : { household: household || null, visited_at: Date.now(), kind: 'routine', location: null, notes: '', concerns: [], findings: '' };
  // Photos picked and not yet saved ride in the draft (their bytes are in IndexedDB).
  const photos = photoPicker({ attached: l ? photosOf(l) : [], picked: (kept && kept.values.photos) || [], testid: 'visit-photos' });
  const hh = rec(f.household);
  const hhPick = householdPicker(f.household, { testid: 'visit-household' });
  const picker = l ? null : gridPicker('visit-grid');
  const kind = chips(VISIT_KIND, f.kind, { testid: 'visit-kind', cols: 4 });
  const time = h('input.input', { type: 'datetime-local', value: toLocalInput(f.visited_at), testid: 'visit-time' });
  const notes = h('textarea.input', { rows: 4, value: f.notes, placeholder: '家庭情况、身体状况、生活情况等', testid: 'visit-notes' });
  const quick = h(
    'div.chips.quick',
    null,
    QUICK.map((q) =>
      h(
        'button.chip.small',
        {
          type: 'button',
          onclick: () => {
            notes.value = notes.value.trim() ? `${notes.value.trim()}，${q}` : q;
            notes.dataset.dirty = '1';
          },
        },
        `＋${q}`,
      ),
    ),
  );
  const findings = h('textarea.input', { rows: 3, value: f.findings, placeholder: '发现的矛盾纠纷、安全隐患等（可不填）', testid: 'visit-findings' });

  // 群众诉求: several short items
  const concerns = [...f.concerns];
  const concernList = h('ul.concerns');
  const concernInput = h('input.input', { placeholder: '输入一条诉求', testid: 'visit-concern-input', enterkeyhint: 'done' });
  const drawConcerns = () =>
    concernList.replaceChildren(
      ...concerns.map((c, i) =>
        h(
          'li',
          { testid: 'visit-concern' },
          h('span', null, c),
          h('button.x', { type: 'button', 'aria-label': '删除', onclick: () => (concerns.splice(i, 1), drawConcerns()) }, '×'),
        ),
      ),
    );
  const addConcern = () => {
    const v = concernInput.value.trim();
    if (v) concerns.push(v);
    concernInput.value = '';
    drawConcerns();
  };
  concernInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      addConcern();
    }
  });
  drawConcerns();

  // GPS: optional, never blocks saving
  let geo = f.location;
  const locText = h('span.loc', { testid: 'visit-location-text' }, geo ? `已定位 ±${Math.round(geo.accuracy_m || 0)}米` : '');
  const locBtn = h(
    'button.btn',
    {
      type: 'button',
      testid: 'visit-location',
      onclick: () => {
        if (!navigator.geolocation) return (locText.textContent = '本机不支持定位');
        locText.textContent = '正在定位…（可先继续填写）';
        navigator.geolocation.getCurrentPosition(
          (p) => {
            geo = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy ?? null };
            locText.textContent = `已定位 ±${Math.round(p.coords.accuracy || 0)}米`;
          },
          (err) => (locText.textContent = err.code === 1 ? '未允许定位（可不填）' : '暂时无法定位（可不填）'),
          { enableHighAccuracy: true, timeout: 20_000, maximumAge: 120_000 },
        );
      },
    },
    '获取位置',
  );

  const read = () => ({
    household: hhPick.value || null,
    visited_at: time.value ? new Date(time.value).getTime() : f.visited_at,
    kind: kind.value || null,
    location: geo,
    notes: notes.value.trim(),
    concerns: [...concerns],
    findings: findings.value.trim(),
    photos: photos.value,
  });

  const save = async () => {
    addConcern();
    await photos.ready();
    if (!kind.value) return toast('请选择走访类型', 'error');
    if (!notes.value.trim() && !concerns.length && !findings.value.trim()) {
      notes.focus();
      return toast('请填写走访情况', 'error');
    }
    const { photos: picked, ...rest } = read();
    const fields = { ...rest, visited_at: time.value ? new Date(time.value).getTime() : Date.now() };
    const grid = l ? null : gridOf(fields.household, picker);
    if (grid === undefined) {
      picker.focus();
      picker.scrollIntoView({ block: 'center' });
      return toast('请选择住户或网格', 'error');
    }
    if (!attempt(() => saveRecord(target, { type: 'visit_log', ...fields }, grid))) return;
    const photoError = await attachPhotos(target.id, picked).then(() => null, (e) => e);
    if (!(await saved())) return;
    if (photoError) {
      // The visit is kept; the photos stay in the form to save again.
      console.error(photoError);
      return toast(`走访已保存，但照片未能添加：${explain(photoError)}。请再点一次保存。`, 'error');
    }
    tracker.saved();
    if (l) back(`#/visit/${id}`);
    else location.replace(`#/visit/${target.id}?saved=1`);
  };

  const submit = h('button.btn.primary.big', { type: 'submit', testid: 'visit-save' }, '保存走访记录');
  const editDraft = l && !kept ? loadDraft('visit', id) : null;
  const form = h(
    'form.section',
    { testid: 'visit-form', 'data-record-id': target.id },
    topbar(l ? '编辑走访' : '记录走访', hh ? `#/household/${hh.id}` : '#/visits'),
    editDraft ? draftOffer([editDraft], (d) => `#/visit/${id}/edit?draft=${d.id}`, describeVisitDraft) : null,
    !l && !kept ? draftOffer(draftsOf('visit', (d) => d.mode === 'new' && d.id !== target.id), (d) => `#/visit/new?draft=${d.id}`, describeVisitDraft) : null,
    kept ? h('p.banner.info.small', { testid: 'draft-restored' }, `已恢复 ${when(kept.at)} 保存的草稿，请检查后保存。`) : null,
    h('div.field', null, h('span.label', null, '走访住户'), hhPick.el),
    picker && field('所属网格', picker, '不选住户时请选择网格'),
    h('div.field', null, h('span.label', null, '走访类型'), kind.el),
    field('走访时间', time),
    h('div.field', null, h('span.label', null, '走访情况'), notes, quick),
    h('div.field', null, h('span.label', null, '群众诉求'), concernList, h('div.row.add', null, concernInput, h('button.btn', { type: 'button', testid: 'visit-concern-add', onclick: addConcern }, '添加'))),
    field('发现问题', findings),
    h('div.field', null, h('span.label', null, '位置（可选）'), h('div.row.center', null, locBtn, locText)),
    h('div.field', null, h('span.label', null, '照片（可选）'), photos.el),
    submit,
  );
  form.addEventListener('submit', once(submit, save));
  const tracker = track(form, { name: 'visit', mode: l ? 'edit' : 'new', target, read, restored: !!kept, label: '走访记录' });
  return form;
}

export function visitView({ id, saved: justSaved }) {
  const l = rec(id);
  if (!l || l.record.type !== 'visit_log') return h('section', null, topbar('走访记录', '#/visits'), empty('本机没有这条走访记录。'));
  const f = l.record.fields;
  const hh = rec(f.household);
  const cases = records('case').filter((c) => c.record.fields.visit === id);
  const voided = voidOf(l);
  const reportCase = voided ? null : h('button.btn.big', { type: 'button', testid: 'visit-report-case', class: justSaved ? 'primary' : null, onclick: () => go(`#/case/new?visit=${id}${hh ? `&household=${hh.id}` : ''}`) }, '上报事件');
  const afterEdit = async (edit, text) => {
    if (attempt(edit) && (await saved(text))) S.refresh();
  };
  return h(
    'section',
    null,
    topbar('走访记录', hh ? `#/household/${hh.id}` : '#/visits', voided ? null : h('button.link', { type: 'button', testid: 'visit-edit', onclick: () => go(`#/visit/${id}/edit`) }, '编辑')),
    voidedNotice(l),
    conflictsCard(l, VISIT_FIELDS, showVisitField, (edit) => afterEdit(edit, '已采用')),
    justSaved
      ? h(
          'div.done',
          { testid: 'visit-saved' },
          h('div.done-title', null, '✓ 已保存'),
          h('p', null, navigator.onLine ? '将自动同步到服务器。' : '当前离线，联网后自动同步。'),
          h('p', null, '走访中发现矛盾纠纷或安全隐患？'),
        )
      : null,
    justSaved ? reportCase : null,
    h(
      'div.card',
      null,
      h('div.big', null, hh ? householdName(hh) : '（未关联住户）'),
      hh ? h('div.muted', null, hh.record.fields.address) : null,
      h(
        'dl.facts',
        null,
        h('dt', null, '时间'),
        h('dd', null, when(f.visited_at)),
        h('dt', null, '走访人'),
        h('dd', { testid: 'visit-creator' }, personName(l.record.meta.creator)),
        h('dt', null, '网格'),
        h('dd', { testid: 'record-grid' }, placeName(l.record.meta.grid)),
        f.kind ? [h('dt', null, '类型'), h('dd', null, VISIT_KIND[f.kind])] : null,
        h('dt', null, '情况'),
        h('dd.pre', null, f.notes || '—'),
        f.concerns.length ? [h('dt', null, '诉求'), h('dd', null, h('ul.plain', null, f.concerns.map((c) => h('li', null, c))))] : null,
        f.findings ? [h('dt', null, '发现问题'), h('dd.pre', null, f.findings)] : null,
        f.location ? [h('dt', null, '位置'), h('dd', null, `${f.location.lat.toFixed(5)}, ${f.location.lon.toFixed(5)}`, f.location.accuracy_m ? ` ±${Math.round(f.location.accuracy_m)}米` : '')] : null,
      ),
      photoStrip(photosOf(l), 'visit-photos'),
    ),
    justSaved
      ? h(
          'div.row',
          null,
          h('button.btn', { type: 'button', testid: 'visit-another', onclick: () => go('#/visit/new') }, '再记一条'),
          hh ? h('button.btn', { type: 'button', onclick: () => go(`#/household/${hh.id}`) }, '返回住户') : h('button.btn', { type: 'button', onclick: () => go('#/visits') }, '返回列表'),
        )
      : reportCase,
    cases.length ? [h('h2', null, `由此上报的事件（${cases.length}）`), h('div.list', null, cases.map(caseItem))] : null,
    justSaved ? null : voidButton(l, '走访记录', (edit) => afterEdit(edit, '已作废')),
  );
}

const VISIT_FIELDS = { household: '走访住户', visited_at: '走访时间', kind: '走访类型', location: '位置' };

function showVisitField(field, v) {
  if (v == null || v === '') return '（空）';
  if (field === 'kind') return VISIT_KIND[v] || v;
  if (field === 'visited_at') return when(v);
  if (field === 'household') {
    const hh = rec(v);
    return hh ? householdName(hh) : '（本机没有这户）';
  }
  if (field === 'location' && typeof v === 'object') return `${Number(v.lat).toFixed(5)}, ${Number(v.lon).toFixed(5)}`;
  return String(v);
}
