// 管理控制台 (administrators): 区域, 人员, 设备, 导入, 审计 — the server's admin
// routes (/v1/admin/...) in a browser, on a desktop (tables) or a phone (the
// same tables shown as cards below 700 px). Everything comes from the server,
// so this page needs the network; every action is audited by the server.

import { me, topbar } from './core.js';
import { ROLE, ask, download, field, h, onlineApi, toast, when } from './ui.js';

const PAGES = { territories: '区域', people: '人员', devices: '设备', imports: '导入', audit: '审计' };
const KINDS = { territories: '区域划分表', people: '人员名册', households: '人口信息表' };
const STATUS = { dry_run: '待确认', running: '导入中', done: '已完成', failed: '失败' };
const ACTIONS = {
  '': '全部操作',
  'territory.': '区域', 'person.': '人员', 'device.': '设备', 'import.': '导入', 'audit.': '审计下载', 'snapshot.': '数据导出', 'sign_in.': '登录',
};

// What each audited action is called (others are shown by their code only).
const ACTION_NAMES = {
  'territory.add': '添加区域', 'territory.rename': '区域改名',
  'person.add': '添加人员', 'person.move': '调动人员', 'person.disable': '停用人员', 'person.enable': '启用人员',
  'person.reset_password': '重置密码', 'person.change_password': '修改密码',
  'device.add': '登记设备', 'device.revoke': '注销设备',
  'audit.download': '下载审计日志', 'import.passwords_download': '下载初始密码',
  'import.dry_run': '导入检查', 'import.apply': '确认导入', 'import.failed': '导入失败', 'import.refused': '导入被拒绝',
  'snapshot.export': '导出数据', 'report.download': '下载统计', 'sign_in.lockout': '登录锁定', 'bundle.import': '导入数据包',
};

/** A request to the admin API with this device's token; throws an Error with a Chinese message. */
const api = (path, opts = {}) =>
  onlineApi(me().token, path, { ...opts, offline: '当前没有网络。管理控制台需要联网，请到有信号的地方再试。', forbidden: '只有管理员可以使用管理控制台' });
const getJson = async (path) => (await api(path)).json();

/** Runs an action, showing its error as a toast; returns its value or undefined. */
async function attempt(fn) {
  try {
    return await fn();
  } catch (e) {
    toast(e.message || String(e), 'error');
  }
}

/** A modal with any content; resolves with what `done` is called with. */
function modal(title, build) {
  return new Promise((resolve) => {
    const close = (v) => {
      back.remove();
      resolve(v);
    };
    const back = h('div.modal-back', { onclick: (e) => e.target === back && close(null) });
    back.append(h('div.modal.console-modal', { role: 'dialog', 'aria-modal': 'true', testid: 'console-dialog' }, h('h2', null, title), build(close)));
    document.body.append(back);
    const first = back.querySelector('input, select, button');
    if (first) first.focus();
  });
}

/** Shows a secret (a new password) once, with a copy button. */
function showOnce(title, text, secret) {
  return modal(title, (close) => {
    const copy = h('button.btn', {
      type: 'button', testid: 'secret-copy',
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(secret);
          copy.textContent = '已复制';
        } catch {
          toast('无法自动复制，请手动选中密码复制', 'warn');
        }
      },
    }, '复制');
    return h('div', null,
      h('p', null, text),
      h('div.secret', null, h('code', { testid: 'secret-value' }, secret), copy),
      h('p.muted.small', null, '密码只显示这一次，关闭后无法再查看。请当面交给本人，并提醒其登录后修改密码。'),
      h('div.row', null, h('button.btn.primary', { type: 'button', testid: 'secret-done', onclick: () => close(true) }, '我已记下，关闭')),
    );
  });
}

/**
 * A table on a desktop, cards on a phone: each cell carries its column's
 * name (data-label) for the card layout. `cols` = [[header, (row) => node]].
 */
function table(testid, cols, rows, rowAttrs = () => ({})) {
  if (!rows.length) return h('p.empty', { testid: `${testid}-empty` }, '没有符合条件的记录');
  return h(
    'table.ctable',
    { testid },
    h('thead', null, h('tr', null, cols.map(([name]) => h('th', { scope: 'col' }, name)))),
    h('tbody', null, rows.map((r) => h('tr', rowAttrs(r), cols.map(([name, cell]) => h('td', { 'data-label': name }, cell(r)))))),
  );
}

const select = (options, value, attrs = {}) =>
  h('select.input', attrs, Object.entries(options).map(([k, v]) => h('option', { value: k, selected: k === value ? true : null }, v)));

const fmtTime = (ms) => (ms ? when(ms) : '未知');

/** The console: tabs and the chosen page. */
export function consoleView(params) {
  if (me().role !== 'administrator') {
    return h('section', { testid: 'console-refused' }, topbar('管理控制台', '#/me'), h('p.banner.warn', null, '只有管理员可以使用管理控制台。'));
  }
  const page = PAGES[params.id] ? params.id : 'territories';
  const body = h('div.console-body', { testid: `console-${page}` }, h('p.muted', null, '正在加载…'));
  const tabs = h(
    'nav.console-tabs',
    { 'aria-label': '管理控制台' },
    Object.entries(PAGES).map(([k, v]) =>
      h('a.chip', { href: `#/admin/${k}`, testid: `console-tab-${k}`, 'aria-selected': k === page ? 'true' : 'false' }, v),
    ),
  );
  const view = h('section.console', { testid: 'console' }, topbar('管理控制台', '#/me'), tabs, body);
  const pages = { territories: territoriesPage, people: peoplePage, devices: devicesPage, imports: importsPage, audit: auditPage };
  pages[page](body).catch((e) => body.replaceChildren(h('p.banner.warn', { testid: 'console-error' }, e.message || String(e))));
  return view;
}

// --------------------------------------------------------------------- 区域
let territoryCache = null;
async function territories() {
  // Names only: the counts take a pass over every record (seconds for a whole city).
  if (!territoryCache) territoryCache = (await getJson('/v1/admin/territories?counts=false')).nodes;
  return territoryCache;
}
const territoryOptions = (nodes, filter = () => true, first) => {
  const o = first ? { '': first } : {};
  for (const n of nodes.filter(filter)) o[n.path] = `${'　'.repeat(n.path.split('/').length - 1)}${n.name}（${n.path}）`;
  return o;
};

async function territoriesPage(body) {
  territoryCache = null;
  const data = await getJson('/v1/admin/territories');
  territoryCache = data.nodes;
  const nodes = data.nodes;
  const parents = nodes.filter((n) => n.path.split('/').length < 5);
  const parent = select(territoryOptions(parents), parents[0] && parents[0].path, { testid: 'territory-parent' });
  const code = h('input.input', { testid: 'territory-code', placeholder: '如 g03（小写字母、数字、-）', autocomplete: 'off' });
  const name = h('input.input', { testid: 'territory-name', placeholder: '如 东湖社区第三网格' });
  const add = async () => {
    if (!code.value.trim() || !name.value.trim()) return toast('请填写编码和名称', 'warn');
    const path = `${parent.value}/${code.value.trim()}`;
    const ok = await attempt(() => api('/v1/admin/territories', { method: 'POST', json: { path, name: name.value.trim() } }));
    if (ok) {
      toast(`已添加 ${name.value.trim()}`);
      territoriesPage(body);
    }
  };
  const rename = async (n) => {
    const v = await ask({ title: `改名：${n.name}`, text: `编码 ${n.path} 不变，只改名称。`, input: '新名称' });
    if (!v) return;
    const ok = await attempt(() => api('/v1/admin/territories', { method: 'POST', json: { path: n.path, name: v } }));
    if (ok) {
      toast('已改名');
      territoriesPage(body);
    }
  };
  // The tree: nested lists in path order.
  const byParent = new Map();
  for (const n of nodes) {
    const p = n.path.split('/').slice(0, -1).join('/');
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(n);
  }
  const known = new Set(nodes.map((n) => n.path));
  const roots = nodes.filter((n) => !known.has(n.path.split('/').slice(0, -1).join('/')));
  const branch = (list) =>
    h('ul.tree', null, list.map((n) =>
      h('li', { testid: 'territory-node', 'data-path': n.path },
        h('div.tree-node', null,
          h('div.tree-text', null,
            h('b', null, n.name), ' ', h('span.tag', null, n.level), ' ', h('span.muted.small', null, n.path),
            h('div.muted.small.tree-counts', { testid: 'territory-counts' },
              `人员 ${n.people} · 住户 ${n.households} · 走访 ${n.visit_logs} · 未办结事件 ${n.open_cases}`),
          ),
          h('button.btn.small', { type: 'button', testid: 'territory-rename', onclick: () => rename(n) }, '改名'),
        ),
        byParent.has(n.path) ? branch(byParent.get(n.path)) : null,
      ),
    ));
  body.replaceChildren(
    h('div.card', null,
      h('div.big', null, '添加区域'),
      h('div.console-form', null,
        field('上级区域', parent),
        field('编码', code),
        field('名称', name),
        h('button.btn.primary', { type: 'button', testid: 'territory-add', onclick: add }, '添加'),
      ),
    ),
    h('p.muted.small', null, `共 ${nodes.length} 个区域；数字含下级。统计用时 ${data.computed_ms} 毫秒。`),
    h('div.card', { testid: 'territory-tree' }, branch(roots)),
  );
}

// --------------------------------------------------------------------- 人员
const peopleState = { q: '', territory: '', offset: 0 };
const PAGE = 20;

async function peoplePage(body) {
  const nodes = await territories();
  const q = h('input.input.search', { type: 'search', testid: 'people-q', placeholder: '姓名或登录名', value: peopleState.q });
  const where = select(territoryOptions(nodes, () => true, '全部区域'), peopleState.territory, { testid: 'people-territory' });
  const results = h('div', { testid: 'people-results' });
  const search = async (offset = 0) => {
    peopleState.q = q.value.trim();
    peopleState.territory = where.value;
    peopleState.offset = offset;
    const p = new URLSearchParams({ q: peopleState.q, offset, limit: PAGE });
    if (peopleState.territory) p.set('territory', peopleState.territory);
    const data = await attempt(() => getJson(`/v1/admin/people/search?${p}`));
    if (!data) return;
    const reload = () => search(peopleState.offset);
    results.replaceChildren(
      h('p.muted.small', { testid: 'people-total', 'data-total': data.total }, `共 ${data.total} 人`),
      table('people-table', [
        ['姓名', (r) => h('b', null, r.name)],
        ['登录名', (r) => r.username],
        ['角色', (r) => ROLE[r.role] || r.role],
        ['区域', (r) => nameOf(nodes, r.territory)],
        ['状态', (r) => (r.disabled_at ? h('span.tag.danger', { testid: 'person-state' }, '已停用') : h('span.tag.ok', { testid: 'person-state' }, '正常'))],
        ['在用设备', (r) => String(r.active_devices)],
        ['最近同步', (r) => fmtTime(r.last_seen)],
        ['操作', (r) => personActions(r, nodes, reload)],
      ], data.people, (r) => ({ testid: 'person-row', 'data-username': r.username })),
      h('div.row.pager', null,
        h('button.btn', { type: 'button', testid: 'people-prev', disabled: offset === 0 ? true : null, onclick: () => search(Math.max(0, offset - PAGE)) }, '上一页'),
        h('button.btn', { type: 'button', testid: 'people-next', disabled: offset + PAGE >= data.total ? true : null, onclick: () => search(offset + PAGE) }, '下一页'),
      ),
    );
  };
  body.replaceChildren(
    h('div.card.console-form', null,
      field('查找', q),
      field('区域', where),
      h('button.btn.primary', { type: 'button', testid: 'people-search', onclick: () => search(0) }, '搜索'),
      h('button.btn', { type: 'button', testid: 'person-add', onclick: () => addPerson(nodes, () => search(peopleState.offset)) }, '添加人员'),
    ),
    results,
  );
  q.addEventListener('keydown', (e) => e.key === 'Enter' && search(0));
  await search(peopleState.offset);
}

const nameOf = (nodes, path) => {
  const n = nodes.find((x) => x.path === path);
  return n ? `${n.name}` : path;
};

function personActions(r, nodes, reload) {
  const post = (action) => api(`/v1/admin/people/${r.id}/${action}`, { method: 'POST' });
  const disable = async () => {
    const ok = await ask({
      title: `停用 ${r.name}？`,
      text: '停用后此人不能登录，所有手机立即退出登录（手机上未同步的记录会保留在手机上，重新启用并登录后可再同步）。',
      ok: '停用', danger: true,
    });
    if (ok && (await attempt(() => post('disable')))) {
      toast(`已停用 ${r.name}`);
      reload();
    }
  };
  const enable = async () => {
    if (await attempt(() => post('enable'))) {
      toast(`已启用 ${r.name}，可以重新登录`);
      reload();
    }
  };
  const reset = async () => {
    const ok = await ask({ title: `重置 ${r.name} 的密码？`, text: '将生成新密码，此人的所有手机需要用新密码重新登录。', ok: '重置密码', danger: true });
    if (!ok) return;
    const resp = await attempt(() => post('reset-password'));
    if (!resp) return;
    const { password } = await resp.json();
    await showOnce('新密码', `${r.name}（${r.username}）的新密码：`, password);
    reload();
  };
  const move = async () => {
    const fits = (n) => (r.role === 'field_staff' ? n.path.split('/').length === 5 : r.role === 'supervisor' ? n.path.split('/').length < 5 : true);
    const target = await modal(`调动 ${r.name}`, (close) => {
      const to = select(territoryOptions(nodes.filter((n) => n.path !== r.territory), fits), null, { testid: 'move-territory' });
      return h('div', null,
        h('p', null, `现在：${nameOf(nodes, r.territory)}（${r.territory}）。调动后，此人的手机下次同步时换到新区域。`),
        field('调往', to),
        h('div.row', null,
          h('button.btn', { type: 'button', testid: 'move-cancel', onclick: () => close(null) }, '取消'),
          h('button.btn.primary', { type: 'button', testid: 'move-ok', onclick: () => close(to.value) }, '调动'),
        ),
      );
    });
    if (target && (await attempt(() => api(`/v1/admin/people/${r.id}/move`, { method: 'POST', json: { territory: target } })))) {
      toast(`已调动 ${r.name}`);
      territoryCache = null;
      reload();
    }
  };
  const self = r.id === me().person;
  if (self) return h('span.muted.small', null, '本人');
  return h('div.actions', null,
    r.disabled_at
      ? h('button.btn.small', { type: 'button', testid: 'person-enable', onclick: enable }, '启用')
      : h('button.btn.small.danger', { type: 'button', testid: 'person-disable', onclick: disable }, '停用'),
    h('button.btn.small', { type: 'button', testid: 'person-reset', onclick: reset }, '重置密码'),
    h('button.btn.small', { type: 'button', testid: 'person-move', onclick: move }, '调动'),
  );
}

async function addPerson(nodes, reload) {
  const values = await modal('添加人员', (close) => {
    const name = h('input.input', { testid: 'new-name', placeholder: '如 张伟' });
    const username = h('input.input', { testid: 'new-username', placeholder: '登录名，不含空格', autocomplete: 'off' });
    const role = select({ field_staff: '网格员', supervisor: '负责人（社区及以上）', administrator: '管理员' }, 'field_staff', { testid: 'new-role' });
    const where = select(territoryOptions(nodes), null, { testid: 'new-territory' });
    return h('div', null,
      field('姓名', name), field('登录名', username), field('角色', role), field('负责区域', where, '网格员选网格，负责人选社区或以上'),
      h('div.row', null,
        h('button.btn', { type: 'button', onclick: () => close(null) }, '取消'),
        h('button.btn.primary', {
          type: 'button', testid: 'new-ok',
          onclick: () => (name.value.trim() && username.value.trim() ? close({ name: name.value.trim(), username: username.value.trim(), role: role.value, territory: where.value }) : toast('请填写姓名和登录名', 'warn')),
        }, '添加'),
      ),
    );
  });
  if (!values) return;
  const resp = await attempt(() => api('/v1/admin/people', { method: 'POST', json: values }));
  if (!resp) return;
  const { password } = await resp.json();
  await showOnce('初始密码', `${values.name}（${values.username}）已添加，初始密码：`, password);
  reload();
}

// --------------------------------------------------------------------- 设备
async function devicesPage(body) {
  let revoked = false;
  const list = h('div');
  const load = async () => {
    const data = await getJson(`/v1/admin/devices?revoked=${revoked}&limit=500`);
    list.replaceChildren(
      h('p.muted.small', null, `共 ${data.total} 台。“待同步”只有手机自己知道，服务器在手机上传前无法得知，显示为“未知”。`),
      table('devices-table', [
        ['设备', (d) => h('b', null, d.name)],
        ['人员', (d) => `${d.person_name}（${d.username}）`],
        ['登记时间', (d) => when(d.created_at)],
        ['最近联网', (d) => fmtTime(d.last_seen)],
        ['待同步', (d) => (d.pending_changes == null ? '未知' : String(d.pending_changes))],
        ['状态', (d) => (d.revoked_at ? h('span.tag.danger', null, '已注销') : h('span.tag.ok', null, '在用'))],
        ['操作', (d) => (d.revoked_at ? '' : h('button.btn.small.danger', { type: 'button', testid: 'device-revoke', onclick: () => revoke(d) }, '注销'))],
      ], data.devices, (d) => ({ testid: 'device-row', 'data-username': d.username, 'data-id': d.id })),
    );
  };
  const revoke = async (d) => {
    const ok = await ask({ title: `注销 ${d.person_name} 的“${d.name}”？`, text: '这台设备会立即退出登录，需要重新登录才能继续使用。', ok: '注销', danger: true });
    if (ok && (await attempt(() => api(`/v1/admin/devices/${d.id}/revoke`, { method: 'POST' })))) {
      toast('已注销');
      load();
    }
  };
  body.replaceChildren(
    h('label.card.setting', null,
      h('input', { type: 'checkbox', testid: 'devices-revoked', onchange: (e) => ((revoked = e.target.checked), load()) }), ' 显示已注销的设备'),
    list,
  );
  await load();
}

// --------------------------------------------------------------------- 导入
let importKind = 'households';

async function importsPage(body) {
  const kinds = h('div.chips', { role: 'radiogroup' });
  const paintKinds = () => {
    kinds.replaceChildren(...Object.entries(KINDS).map(([k, v]) =>
      h('button.chip', { type: 'button', role: 'radio', testid: `import-kind-${k}`, 'aria-checked': k === importKind ? 'true' : 'false', onclick: () => ((importKind = k), paintKinds()) }, v)));
  };
  paintKinds();
  const template = (ext) => async () => {
    const resp = await attempt(() => api(`/v1/admin/imports/templates/${importKind}.${ext}`));
    if (resp) toast(`已下载 ${await download(resp, `${KINDS[importKind]}.${ext}`)}`);
  };
  const file = h('input.input', { type: 'file', testid: 'import-file', accept: '.xlsx,.csv' });
  const report = h('div', { testid: 'import-report' });
  const history = h('div', { testid: 'import-history' });
  const upload = async () => {
    const f = file.files && file.files[0];
    if (!f) return toast('请先选择文件', 'warn');
    report.replaceChildren(h('p.muted', null, '正在检查文件…'));
    const resp = await attempt(() => api(`/v1/admin/imports?kind=${importKind}&name=${encodeURIComponent(f.name)}`, { method: 'POST', body: f }));
    if (!resp) return report.replaceChildren();
    showRun(report, await resp.json(), () => loadHistory(history));
    report.scrollIntoView({ block: 'start' });
    loadHistory(history);
  };
  body.replaceChildren(
    h('div.card', null,
      h('div.big', null, '1. 选择类型'), kinds,
      h('div.row', null,
        h('button.btn', { type: 'button', testid: 'template-xlsx', onclick: template('xlsx') }, '下载模板 XLSX'),
        h('button.btn', { type: 'button', testid: 'template-csv', onclick: template('csv') }, '下载模板 CSV'),
      ),
      h('div.big', null, '2. 上传文件'),
      h('p.muted.small', null, '支持 Excel（XLSX）和 CSV（UTF-8 或 GBK）。上传后先检查，不会写入任何数据；确认后才导入。'),
      file,
      h('button.btn.primary.wide', { type: 'button', testid: 'import-upload', onclick: upload }, '上传并检查'),
    ),
    report,
    h('h2', null, '导入记录'),
    history,
  );
  await loadHistory(history);
}

/** The dry-run report of `run`, with confirm and, once running, a progress bar. */
function showRun(box, run, onChange) {
  const c = (label, n, testid) => h('div.stat', { testid, 'data-count': n }, h('b', null, String(n)), h('span', null, label));
  const problems = run.problems_total
    ? h('div.card', null,
      h('p.banner.warn', { testid: 'import-problems-total', 'data-count': run.problems_total },
        `发现 ${run.problems_total} 处问题${run.problems_total > run.problems.length ? `（只列出前 ${run.problems.length} 处）` : ''}。请修改文件后重新上传，或只导入没有问题的行。`),
      table('import-problems', [
        ['行', (p) => String(p.row)],
        ['列', (p) => p.column || '整行'],
        ['原因', (p) => p.reason],
      ], run.problems, () => ({ testid: 'import-problem' })))
    : h('p.banner.info', { testid: 'import-clean' }, '检查通过，没有发现问题。');
  const progress = h('div.progress', { testid: 'import-progress', hidden: true, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div.progress-bar'), h('span.progress-text'));
  const outcome = h('div', { testid: 'import-outcome' });
  const confirm = async (skip) => {
    if (skip && !(await ask({ title: '只导入没有问题的行？', text: `有问题的 ${run.problems_total} 处所在的行不会导入。`, ok: '导入' }))) return;
    const resp = await attempt(() => api(`/v1/admin/imports/${run.id}/confirm${skip ? '?skip_problems=true' : ''}`, { method: 'POST' }));
    if (!resp) return;
    for (const b of box.querySelectorAll('[data-confirm]')) b.remove();
    poll(run.id, progress, outcome, onChange);
  };
  const waiting = run.status === 'dry_run';
  box.replaceChildren(
    h('div.card', { testid: 'import-run', 'data-id': run.id, 'data-status': run.status },
      h('div.big', null, `检查结果：${run.name}（${KINDS[run.kind] || run.kind}）`),
      h('div.stats', null,
        c('数据行', run.rows, 'import-rows'), c('将新建', run.create, 'import-create'),
        c('将更新', run.update, 'import-update'), c('不变', run.unchanged, 'import-unchanged')),
      run.unknown_columns && run.unknown_columns.length ? h('p.banner.warn.small', null, `文件中有模板没有的列（已忽略）：${run.unknown_columns.join('、')}`) : null,
      waiting && !run.problems_total ? h('button.btn.primary.wide', { type: 'button', testid: 'import-confirm', 'data-confirm': '1', onclick: () => confirm(false) }, '确认导入') : null,
      waiting && run.problems_total ? h('button.btn.wide', { type: 'button', testid: 'import-confirm-skip', 'data-confirm': '1', onclick: () => confirm(true) }, '只导入没有问题的行') : null,
      progress,
      outcome,
    ),
    problems,
  );
  if (run.status === 'running') poll(run.id, progress, outcome, onChange);
}

async function poll(id, progress, outcome, onChange) {
  progress.hidden = false;
  const bar = progress.querySelector('.progress-bar');
  const text = progress.querySelector('.progress-text');
  for (;;) {
    let run;
    try {
      run = await getJson(`/v1/admin/imports/${id}`);
    } catch (e) {
      text.textContent = `${e.message}，稍后重试…`;
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    const total = run.progress.total || 0;
    const done = run.status === 'done' ? total : run.progress.done;
    const pct = run.status === 'done' ? 100 : total ? Math.floor((done / total) * 100) : 0;
    bar.style.width = `${pct}%`;
    progress.setAttribute('aria-valuenow', pct);
    progress.dataset.pct = pct;
    text.textContent = `${pct}%（${done} / ${total}）`;
    if (run.status === 'done' || run.status === 'failed') {
      const o = run.outcome || {};
      outcome.replaceChildren(
        run.status === 'done'
          ? h('p.banner.info', { testid: 'import-done' }, `导入完成：新建 ${o.create ?? 0}，更新 ${o.update ?? 0}，不变 ${o.unchanged ?? 0}。`)
          : h('p.banner.danger', { testid: 'import-failed' }, `导入失败：${run.error || '未知原因'}。已写入的部分保留，可修正后重新导入。`),
        run.passwords_ready ? passwordsButton(run) : '',
      );
      onChange && onChange();
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function passwordsButton(run) {
  const b = h('button.btn.primary.wide', {
    type: 'button', testid: 'import-passwords',
    onclick: async () => {
      const ok = await ask({ title: '下载初始密码？', text: '初始密码文件只能下载一次，下载后服务器不再保存。请妥善保管，发给本人后删除。', ok: '下载' });
      if (!ok) return;
      const resp = await attempt(() => api(`/v1/admin/imports/${run.id}/passwords.csv`));
      if (!resp) return;
      await download(resp, '初始密码.csv');
      b.disabled = true;
      b.textContent = '初始密码已下载';
    },
  }, '下载初始密码（只能下载一次）');
  return b;
}

async function loadHistory(box) {
  const runs = await attempt(() => getJson('/v1/admin/imports'));
  if (!runs) return;
  box.replaceChildren(table('import-history-table', [
    ['时间', (r) => when(r.created_at)],
    ['类型', (r) => KINDS[r.kind] || r.kind],
    ['文件', (r) => r.name],
    ['操作人', (r) => String(r.by || '').replace(/^person:/, '')],
    ['状态', (r) => h('span.tag', { testid: 'history-status' }, STATUS[r.status] || r.status)],
    ['结果', (r) => (r.outcome ? `新建 ${r.outcome.create} · 更新 ${r.outcome.update} · 不变 ${r.outcome.unchanged}` : `${r.rows} 行 · 问题 ${r.problems_total}`)],
    ['', (r) => (r.passwords_ready ? passwordsButton(r) : r.status === 'dry_run' || r.status === 'running' ? h('button.btn.small', { type: 'button', testid: 'history-open', onclick: () => openRun(r.id) }, '查看') : '')],
  ], runs, (r) => ({ testid: 'history-row', 'data-status': r.status })));
}

async function openRun(id) {
  const report = document.querySelector('[data-testid="import-report"]');
  const run = await attempt(() => getJson(`/v1/admin/imports/${id}`));
  if (run && report) {
    showRun(report, run, () => loadHistory(document.querySelector('[data-testid="import-history"]')));
    report.scrollIntoView();
  }
}

// --------------------------------------------------------------------- 审计
async function auditPage(body) {
  const actor = h('input.input', { testid: 'audit-actor', placeholder: '操作人登录名' });
  const action = select(ACTIONS, '', { testid: 'audit-action' });
  const from = h('input.input', { type: 'date', testid: 'audit-from' });
  const to = h('input.input', { type: 'date', testid: 'audit-to' });
  const list = h('div', { testid: 'audit-results' });
  const params = () => {
    const p = new URLSearchParams();
    if (actor.value.trim()) p.set('actor', actor.value.trim());
    if (action.value) p.set('action', action.value);
    const day = (s, plus) => {
      const [y, m, d] = s.split('-').map(Number);
      return +new Date(y, m - 1, d + plus);
    };
    if (from.value) p.set('from', day(from.value, 0));
    if (to.value) p.set('to', day(to.value, 1));
    return p;
  };
  const load = async (before, append) => {
    const p = params();
    p.set('limit', 50);
    if (before) p.set('before', before);
    const data = await attempt(() => getJson(`/v1/admin/audit/search?${p}`));
    if (!data) return;
    const t = table('audit-table', [
      ['时间', (e) => when(e.at)],
      ['操作人', (e) => e.actor.replace(/^person:/, '')],
      ['操作', (e) => [ACTION_NAMES[e.action] ? `${ACTION_NAMES[e.action]} ` : '', h('code', null, e.action)]],
      ['详情', (e) => h('span.pre', null, e.detail)],
      ['区域', (e) => e.territory || '全部'],
    ], data.entries, () => ({ testid: 'audit-row' }));
    const more = data.next_before
      ? h('button.btn.wide', { type: 'button', testid: 'audit-more', onclick: (e) => (e.target.remove(), load(data.next_before, true)) }, '更早的记录')
      : null;
    if (append) {
      const tbody = list.querySelector('tbody');
      const rows = t.querySelectorAll && t.querySelectorAll('tbody tr');
      if (tbody && rows) tbody.append(...rows);
      if (more) list.append(more);
    } else list.replaceChildren(...[t, more].filter(Boolean));
  };
  const csv = async () => {
    const resp = await attempt(() => api(`/v1/admin/audit.csv?${params()}`));
    if (resp) toast(`已下载 ${await download(resp, 'gridsync-audit.csv')}`);
  };
  body.replaceChildren(
    h('div.card.console-form', null,
      field('操作人', actor), field('操作', action), field('从', from), field('到', to),
      h('button.btn.primary', { type: 'button', testid: 'audit-search', onclick: () => load() }, '筛选'),
      h('button.btn', { type: 'button', testid: 'audit-csv', onclick: csv }, '下载 CSV'),
    ),
    list,
  );
  await load();
}
