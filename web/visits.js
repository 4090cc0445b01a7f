// 走访: recent visits, recording a visit in a few taps, and one visit.

import { S, attempt, back, empty, go, gridOf, gridPicker, householdName, householdSelect, rec, records, saved, topbar } from './core.js';
import { caseItem, visitItem } from './households.js';
import { VISIT_KIND, chips, field, h, toLocalInput, toast, when } from './ui.js';

const PAGE = 50;
let shown = PAGE;

export function visitsView() {
  const all = records('visit_log');
  const today = new Date().setHours(0, 0, 0, 0);
  const nToday = all.filter((v) => v.record.fields.visited_at >= today).length;
  const more = all.length > shown;
  return h(
    'section',
    null,
    h('div.head', null, h('h1', null, '走访'), h('span.count', null, `今天 ${nToday} 次 · 共 ${all.length} 次`)),
    h('button.btn.primary.big', { type: 'button', testid: 'visit-new', onclick: () => go('#/visit/new') }, '记录走访'),
    h('h2', null, '最近走访'),
    h('div.list', null, all.length ? all.slice(0, shown).map((v) => visitItem(v, true)) : empty('还没有走访记录。点上方“记录走访”开始。')),
    more ? h('button.btn.wide', { type: 'button', onclick: () => ((shown += PAGE), S.refresh()) }, '显示更多') : null,
  );
}

const QUICK = ['家中情况正常', '身体状况良好', '生活有困难', '已宣传政策', '无诉求'];

/** New visit (`household` preselected) or edit of visit `id`. */
export function visitForm({ id, household }) {
  const l = id ? rec(id) : null;
  const f = l
    ? l.record.fields
    : { household: household || null, visited_at: Date.now(), kind: 'routine', location: null, notes: '', concerns: [], findings: '' };
  const hh = rec(f.household);
  const hhSel = householdSelect(f.household, 'visit-household');
  const picker = l ? null : gridPicker('visit-grid');
  const kind = chips(VISIT_KIND, f.kind, { testid: 'visit-kind', allowNone: true, cols: 4 });
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

  const save = async (e) => {
    e.preventDefault();
    addConcern();
    if (!notes.value.trim() && !concerns.length && !findings.value.trim()) {
      notes.focus();
      return toast('请填写走访情况', 'error');
    }
    const fields = {
      household: hhSel.value || null,
      visited_at: time.value ? new Date(time.value).getTime() : Date.now(),
      kind: kind.value || null,
      location: geo,
      notes: notes.value.trim(),
      concerns,
      findings: findings.value.trim(),
    };
    let visitId = id;
    if (l) {
      if (!attempt(() => S.phone.update(id, fields, Date.now()))) return;
    } else {
      const grid = gridOf(fields.household, picker);
      if (grid === undefined) {
        picker.focus();
        picker.scrollIntoView({ block: 'center' });
        return toast('请选择住户或网格', 'error');
      }
      const r = attempt(() => S.phone.create({ type: 'visit_log', ...fields }, grid, Date.now()));
      if (!r) return;
      visitId = r.value;
    }
    form.querySelectorAll('[data-dirty]').forEach((x) => delete x.dataset.dirty);
    if (!(await saved())) return;
    if (l) back(`#/visit/${id}`);
    else location.replace(`#/visit/${visitId}?saved=1`);
  };

  const form = h(
    'form.section',
    { onsubmit: save },
    topbar(l ? '编辑走访' : '记录走访', hh ? `#/household/${hh.id}` : '#/visits'),
    field('走访住户', hhSel),
    picker && field('所属网格', picker, '不选住户时请选择网格'),
    h('div.field', null, h('span.label', null, '走访类型'), kind.el),
    field('走访时间', time),
    h('div.field', null, h('span.label', null, '走访情况'), notes, quick),
    h('div.field', null, h('span.label', null, '群众诉求'), concernList, h('div.row.add', null, concernInput, h('button.btn', { type: 'button', testid: 'visit-concern-add', onclick: addConcern }, '添加'))),
    field('发现问题', findings),
    h('div.field', null, h('span.label', null, '位置（可选）'), h('div.row.center', null, locBtn, locText)),
    h('button.btn.primary.big', { type: 'submit', testid: 'visit-save' }, '保存走访记录'),
  );
  return form;
}

export function visitView({ id, saved: justSaved }) {
  const l = rec(id);
  if (!l || l.record.type !== 'visit_log') return h('section', null, topbar('走访记录', '#/visits'), empty('本机没有这条走访记录。'));
  const f = l.record.fields;
  const hh = rec(f.household);
  const cases = records('case').filter((c) => c.record.fields.visit === id);
  const reportCase = h('button.btn.big', { type: 'button', testid: 'visit-report-case', class: justSaved ? 'primary' : null, onclick: () => go(`#/case/new?visit=${id}${hh ? `&household=${hh.id}` : ''}`) }, '上报事件');
  return h(
    'section',
    null,
    topbar('走访记录', hh ? `#/household/${hh.id}` : '#/visits', h('button.link', { type: 'button', testid: 'visit-edit', onclick: () => go(`#/visit/${id}/edit`) }, '编辑')),
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
        f.kind ? [h('dt', null, '类型'), h('dd', null, VISIT_KIND[f.kind])] : null,
        h('dt', null, '情况'),
        h('dd.pre', null, f.notes || '—'),
        f.concerns.length ? [h('dt', null, '诉求'), h('dd', null, h('ul.plain', null, f.concerns.map((c) => h('li', null, c))))] : null,
        f.findings ? [h('dt', null, '发现问题'), h('dd.pre', null, f.findings)] : null,
        f.location ? [h('dt', null, '位置'), h('dd', null, `${f.location.lat.toFixed(5)}, ${f.location.lon.toFixed(5)}`, f.location.accuracy_m ? ` ±${Math.round(f.location.accuracy_m)}米` : '')] : null,
      ),
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
  );
}
