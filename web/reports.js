// 统计 (administrators): the figures of GET /v1/admin/report for a period —
// a table per community and grid, a bar chart of visits and cases found per
// grid, the CSV download — and the snapshot downloads of GET /v1/admin/snapshot.
// Everything here comes from the server, so this page needs the network.

import { me, topbar } from './core.js';
import { chips, dateOnly, download, field, h, onlineApi, toLocalInput, toast } from './ui.js';

const PERIODS = { month: '本月', quarter: '本季度', year: '本年', custom: '自定义' };
const SNAPSHOTS = [
  ['csv', '表格 CSV', '可用 Excel / WPS 打开'],
  ['xlsx', 'Excel 工作簿', 'XLSX'],
  ['jsonl', 'JSON Lines', '每行一条记录'],
  ['bundle', '原始数据包', '可据此完整恢复数据'],
];

// Kept while the app is open, so coming back shows the same period.
let period = 'month';
let custom = { from: '', to: '' };

/** [from, to) in Unix ms for the chosen period; null when a custom date is missing or backwards. */
function bounds(kind, now = new Date()) {
  const y = now.getFullYear();
  const m = now.getMonth();
  if (kind === 'month') return { from: +new Date(y, m, 1), to: +new Date(y, m + 1, 1) };
  if (kind === 'quarter') {
    const q = Math.floor(m / 3) * 3;
    return { from: +new Date(y, q, 1), to: +new Date(y, q + 3, 1) };
  }
  if (kind === 'year') return { from: +new Date(y, 0, 1), to: +new Date(y + 1, 0, 1) };
  if (!custom.from || !custom.to) return null;
  const day = (s) => {
    const [yy, mm, dd] = s.split('-').map(Number);
    return new Date(yy, mm - 1, dd);
  };
  const from = +day(custom.from);
  const end = day(custom.to);
  const to = +new Date(end.getFullYear(), end.getMonth(), end.getDate() + 1); // the last day counts in full
  return to > from ? { from, to } : null;
}

/** A request to the admin API with this device's token; throws an Error with a Chinese message. */
const api = (path) =>
  onlineApi(me().token, path, { offline: '当前没有网络。统计和导出需要联网，请到有信号的地方再试。', forbidden: '只有管理员可以查看统计和导出数据' });

/** How 践诺落实率 is counted, in words (the rule is `promises_kept_rate` in shared/src/reports.rs). */
const PROMISE_NOTE =
  '践诺落实率：已到期的承诺中已践诺的比例。期限未到的承诺不计入，既不算已践诺，也不算未践诺；提前践诺的，到期后计入。';

const pct = (r) => (r == null ? '—' : `${(r * 100).toFixed(1)}%`);
const label = (row) => row.name || row.territory.split('/').pop();

/** A grid's name without its community's name in front (东湖社区第一网格 → 第一网格), for rows shown under their community. */
function shortLabels(report) {
  const names = new Map(report.rows.map((r) => [r.territory, r.name]));
  return (row) => {
    const parent = names.get(row.territory.split('/').slice(0, -1).join('/'));
    const own = label(row);
    return parent && own.startsWith(parent) && own.length > parent.length ? own.slice(parent.length) : own;
  };
}

// The table's columns: header, and how to show a row's figures.
const COLUMNS = [
  ['住户', (f) => f.households],
  ['困难群众', (f) => f.needy_households],
  ['走访覆盖户', (f) => f.households_covered],
  ['联系困难群众', (f) => f.needy_households_covered],
  ['走访次数', (f) => f.visits],
  // Photo evidence: visit logs / cases of the period that reference a photo (— from a server without the figure).
  ['有照片的走访', (f) => f.visits_with_photos ?? '—'],
  ['发现事件', (f) => f.cases_found],
  ['有照片的事件', (f) => f.cases_with_photos ?? '—'],
  ['矛盾纠纷', (f) => f.cases_found_by_kind.dispute],
  ['安全隐患', (f) => f.cases_found_by_kind.hazard],
  ['信访', (f) => f.cases_found_by_kind.petition],
  ['群众诉求', (f) => f.cases_found_by_kind.request],
  ['办结', (f) => f.cases_resolved],
  ['办结率', (f) => pct(f.resolution_rate)],
  ['超期未办结', (f) => f.overdue_cases],
  ['承诺事项', (f) => f.promises_made],
  ['已到期承诺', (f) => f.promises_due ?? '—'],
  ['践诺', (f) => f.promises_kept],
  ['践诺率', (f) => pct(f.promises_kept_rate)],
  ['回访评价', (f) => f.rated_follow_ups],
  ['满意率', (f) => pct(f.satisfaction_rate)],
];

function table(report) {
  const short = shortLabels(report);
  const tr = (row, kind) =>
    h(
      'tr',
      { testid: 'report-row', class: `r-${kind}`, 'data-territory': row.territory, 'data-level': row.level },
      h('th', { scope: 'row', title: label(row) }, kind === 'total' ? `合计 · ${label(row)}` : short(row)),
      COLUMNS.map(([, value]) => h('td', null, String(value(row.figures)))),
    );
  return h(
    'div.report-scroll',
    null,
    h(
      'table.report',
      { testid: 'report-table' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, '区域'), COLUMNS.map(([name]) => h('th', { scope: 'col' }, name)))),
      h('tbody', null, report.rows.map((row) => tr(row, row.level === 'grid' ? 'grid' : 'community'))),
      h('tfoot', null, tr(report.total, 'total')),
    ),
  );
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c != null) el.append(c);
  return el;
}

/** Horizontal bars per grid: visits and cases found, on one scale. */
function chart(report) {
  const grids = report.rows.filter((r) => r.level === 'grid');
  const rows = grids.length ? grids : [report.total];
  const max = Math.max(1, ...rows.flatMap((r) => [r.figures.visits, r.figures.cases_found]));
  const W = 340;
  const labelW = 112;
  const barW = W - labelW - 40;
  const rowH = 38;
  const height = rows.length * rowH + 8;
  const bar = (y, value, cls) => [
    svg('rect', { x: labelW, y, width: Math.max(1, (value / max) * barW), height: 13, rx: 3, class: cls }),
    svg('text', { x: labelW + Math.max(1, (value / max) * barW) + 4, y: y + 11, class: 'chart-value' }, String(value)),
  ];
  const body = rows.map((r, i) => {
    const y = 6 + i * rowH;
    return svg(
      'g',
      { 'data-territory': r.territory },
      svg('title', null, `${label(r)}：走访 ${r.figures.visits} 次，发现事件 ${r.figures.cases_found} 件`),
      svg('text', { x: 0, y: y + 20, class: 'chart-label' }, label(r).length > 8 ? `${label(r).slice(0, 7)}…` : label(r)),
      bar(y, r.figures.visits, 'bar-visits'),
      bar(y + 16, r.figures.cases_found, 'bar-cases'),
    );
  });
  return h(
    'figure.card.chart',
    { testid: 'report-chart' },
    h('figcaption', null, h('b', null, '各网格走访与发现事件'), h('span.legend', null, h('i.lg-visits'), '走访次数', h('i.lg-cases'), '发现事件')),
    svg('svg', { viewBox: `0 0 ${W} ${height}`, width: '100%', role: 'img', 'aria-label': '各网格走访次数与发现事件数' }, body),
  );
}

function summary(report) {
  const f = report.total.figures;
  const stat = (name, value, note) =>
    h('div.stat', null, h('b', null, String(value)), h('span', null, name), note ? h('small', null, note) : null);
  return h(
    'div.stats',
    { testid: 'report-summary' },
    stat('走访次数', f.visits),
    stat('联系困难群众', f.needy_households_covered),
    stat('发现事件', f.cases_found),
    stat('办结率', pct(f.resolution_rate)),
    stat('践诺落实率', pct(f.promises_kept_rate), f.promises_due == null ? '只计已到期' : `已到期 ${f.promises_due} 项`),
    stat('群众满意率', pct(f.satisfaction_rate)),
  );
}

/** A button that fetches `path` with the token and saves the answer as a file. */
function downloadButton(testid, text, sub, path, fallbackName, onMissing) {
  const btn = h(
    'button.btn.dl',
    {
      type: 'button',
      testid,
      onclick: async () => {
        btn.disabled = true;
        const old = btn.firstChild.textContent;
        btn.firstChild.textContent = '正在下载…';
        try {
          const name = await download(await api(path()), fallbackName);
          toast(`已下载 ${name}`);
        } catch (e) {
          toast(e.status === 404 && onMissing ? onMissing : e.message, 'error');
        } finally {
          btn.disabled = false;
          btn.firstChild.textContent = old;
        }
      },
    },
    h('span', null, text),
    sub ? h('small', null, sub) : null,
  );
  return btn;
}

export function reportsView() {
  const id = me();
  const section = h('section.reports', null, topbar('统计与导出', '#/me'));
  if (id.role !== 'administrator') {
    section.append(h('p.banner.warn', { testid: 'reports-forbidden' }, '只有管理员可以查看统计和导出数据。'));
    return section;
  }
  const offline = h('p.banner.warn', { testid: 'reports-offline', hidden: navigator.onLine }, '当前没有网络：统计和导出需要联网，请到有信号的地方再试。');
  const onNet = () => {
    if (!section.isConnected) {
      // The page was left: stop listening.
      removeEventListener('online', onNet);
      removeEventListener('offline', onNet);
      return;
    }
    offline.hidden = navigator.onLine;
    if (navigator.onLine && !shown) load();
  };
  addEventListener('online', onNet);
  addEventListener('offline', onNet);

  const status = h('p.muted.small', { testid: 'report-status', role: 'status' });
  const withPhotos = h('input', { type: 'checkbox', testid: 'snapshot-photos' });
  const result = h('div', { testid: 'report-result' });
  let shown = false;
  let seq = 0;
  const query = () => {
    const b = bounds(period);
    return b && `from=${b.from}&to=${b.to}&territory=${encodeURIComponent(id.territory)}`;
  };

  async function load() {
    const q = query();
    if (!q) {
      status.textContent = '请选择开始和结束日期（结束日期不能早于开始日期）。';
      result.replaceChildren();
      return;
    }
    const mine = ++seq;
    const b = bounds(period);
    status.textContent = '正在统计…';
    try {
      const report = await (await api(`/v1/admin/report?${q}&format=json`)).json();
      if (mine !== seq) return;
      shown = true;
      status.textContent = `${dateOnly(b.from)} 至 ${dateOnly(b.to - 1)} · ${label(report.total)} · 共 ${report.rows.filter((r) => r.level === 'grid').length} 个网格`;
      const parts = [
        summary(report),
        h('p.muted.small', { testid: 'report-promise-note' }, PROMISE_NOTE),
        chart(report),
        table(report),
        report.unreadable_records ? h('p.warn.small', null, `有 ${report.unreadable_records} 条记录无法读取，未计入统计。`) : null,
        h('p.muted.small', null, '办结：该时期内办结（或核查、结案）且目前仍为办结及以后状态的事件；超期：截止时间已过仍未办结；满意率按该时期内带满意度的回访计算（满意＋基本满意）。'),
      ];
      result.replaceChildren(...parts.filter(Boolean));
    } catch (e) {
      if (mine !== seq) return;
      status.textContent = '';
      result.replaceChildren(h('p.banner.warn', { testid: 'report-error', role: 'alert' }, e.message));
    }
  }

  const from = h('input.input', { type: 'date', value: custom.from, testid: 'report-from', max: toLocalInput(Date.now(), false) });
  const to = h('input.input', { type: 'date', value: custom.to, testid: 'report-to' });
  const customBox = h(
    'div.card.custom-period',
    { hidden: period !== 'custom' },
    h('div.row', null, field('开始日期', from), field('结束日期', to)),
    h('button.btn.primary.wide', { type: 'button', testid: 'report-apply', onclick: () => ((custom = { from: from.value, to: to.value }), load()) }, '查询'),
  );
  const picker = chips(PERIODS, period, {
    testid: 'report-period',
    cols: 4,
    onchange: (v) => {
      period = v;
      customBox.hidden = v !== 'custom';
      if (v !== 'custom') load();
      else if (custom.from && custom.to) load();
      else {
        result.replaceChildren();
        status.textContent = '请选择开始和结束日期。';
      }
    },
  });

  section.append(
    offline,
    picker.el,
    customBox,
    status,
    result,
    h('h2', null, '下载'),
    h(
      'div.downloads',
      null,
      downloadButton('report-csv', '统计表 CSV', '当前时期，各社区与网格', () => {
        const q = query();
        if (!q) throw Object.assign(new Error('请先选择统计时期'), { status: 0 });
        return `/v1/admin/report?${q}&format=csv`;
      }, 'report.csv'),
    ),
    h('h2', null, '数据快照'),
    h('p.muted.small', null, '负责区域内全部记录的当前状态。身份证号、电话号码默认打码，每次导出都记入审计日志。'),
    h(
      'label.toggle',
      null,
      withPhotos,
      ' 包含照片（压缩包内 photos/ 目录，表格中“照片”列写明文件名；文件较大）',
    ),
    h(
      'div.downloads',
      null,
      SNAPSHOTS.map(([format, text, sub]) =>
        downloadButton(
          `snapshot-${format}`,
          text,
          sub,
          () =>
            `/v1/admin/snapshot?format=${format}&territory=${encodeURIComponent(id.territory)}${withPhotos.checked ? '&photos=true' : ''}`,
          `snapshot-${format}.zip`,
          '服务器暂不支持快照下载（需要升级服务器），请联系系统管理员。',
        ),
      ),
    ),
  );
  load();
  return section;
}
