// Small DOM helpers, Chinese labels and formats shared by the screens.

/** h('div.card', {onclick}, child, ...) — text children become text nodes (never HTML). */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'testid') el.dataset.testid = v;
      else if (k === 'value') el.value = v;
      else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export const ROLE = { field_staff: '网格员', supervisor: '负责人', administrator: '管理员' };
export const VISIT_KIND = { routine: '日常走访', return_visit: '回访', screening: '排查', care: '关爱帮扶' };
export const CASE_KIND = { dispute: '矛盾纠纷', hazard: '安全隐患', petition: '信访', request: '群众诉求' };
export const SATISFACTION = { satisfied: '满意', basic: '基本满意', dissatisfied: '不满意' };
export const STATUS = {
  reported: '已上报',
  accepted: '已受理',
  assigned: '已交办',
  in_progress: '办理中',
  resolved: '已办结',
  verified: '已核查',
  closed: '已结案',
};
export const DEFAULT_TAGS = ['困难群众', '独居老人', '残疾人', '留守儿童', '低保户', '重点人员'];

const pad = (n) => String(n).padStart(2, '0');

export function hhmm(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** 今天 14:05 / 昨天 09:30 / 3月5日 14:05 / 2023年3月5日 */
export function when(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const diff = Math.round((day(now) - day(d)) / 86_400_000);
  if (diff === 0) return `今天 ${hhmm(ms)}`;
  if (diff === 1) return `昨天 ${hhmm(ms)}`;
  if (d.getFullYear() === now.getFullYear()) return `${d.getMonth() + 1}月${d.getDate()}日 ${hhmm(ms)}`;
  return `${d.getFullYear()}年${d.getMonth() + 1}月${d.getDate()}日`;
}

export function dateOnly(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}年${d.getMonth() + 1}月${d.getDate()}日`;
}

/** For <input type="datetime-local"> / type="date". */
export function toLocalInput(ms, withTime = true) {
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return withTime ? `${date}T${pad(d.getHours())}:${pad(d.getMinutes())}` : date;
}

export function daysAgo(ms) {
  const n = Math.floor((Date.now() - ms) / 86_400_000);
  return n <= 0 ? '今天' : n === 1 ? '昨天' : `${n}天前`;
}

/** 420902194803150021 -> 4209**********0021 */
export function maskId(s) {
  return s && s.length > 8 ? s.slice(0, 4) + '*'.repeat(s.length - 8) + s.slice(-4) : s;
}

/** A brief message at the bottom of the screen. */
export function toast(text, kind = 'ok') {
  const old = document.querySelector('.toast');
  if (old) old.remove();
  const el = h('div.toast', { testid: 'toast', role: 'status', class: kind, onclick: () => el.remove() }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 4000 : 1800); // time to read what to do
}

/**
 * A modal question. With `input`, resolves to the typed text (or null on cancel);
 * otherwise to true/false.
 */
export function ask({ title, text, input, ok = '确定', cancel = '取消', danger = false }) {
  return new Promise((resolve) => {
    const field = input ? h('textarea.input', { rows: 3, placeholder: input, testid: 'dialog-input' }) : null;
    const close = (v) => {
      back.remove();
      resolve(v);
    };
    const okBtn = h(
      'button.btn.primary',
      {
        testid: 'dialog-ok',
        class: danger ? 'danger' : null,
        onclick: () => {
          if (field) {
            const v = field.value.trim();
            if (!v) return field.focus();
            close(v);
          } else close(true);
        },
      },
      ok,
    );
    const back = h(
      'div.modal-back',
      { onclick: (e) => e.target === back && close(input ? null : false) },
      h(
        'div.modal',
        { role: 'dialog', 'aria-modal': 'true', testid: 'dialog' },
        h('h2', null, title),
        text && h('p', null, text),
        field,
        h('div.row', null, h('button.btn', { testid: 'dialog-cancel', onclick: () => close(input ? null : false) }, cancel), okBtn),
      ),
    );
    document.body.append(back);
    (field || okBtn).focus();
  });
}

/**
 * A row of single-choice chips; returns {el, get value}. Without `allowNone`
 * the choice is required: once made it can be changed but never emptied.
 */
export function chips(options, selected, { testid, allowNone = false, onchange, cols } = {}) {
  let value = selected;
  const el = h('div.chips', { role: 'radiogroup', class: cols ? `cols${cols}` : null });
  const paint = () => {
    for (const b of el.children) b.setAttribute('aria-checked', b.dataset.value === value ? 'true' : 'false');
  };
  for (const [k, label] of Object.entries(options)) {
    el.append(
      h(
        'button.chip',
        {
          type: 'button',
          role: 'radio',
          'data-value': k,
          testid: testid && `${testid}-${k}`,
          onclick: (e) => {
            // A required choice (allowNone false) cannot be emptied: tapping the chosen chip keeps it.
            const next = allowNone && value === k ? null : k;
            if (next === value) return;
            value = next;
            paint();
            onchange && onchange(value);
            e.currentTarget.dispatchEvent(new Event('change', { bubbles: true }));
          },
        },
        label,
      ),
    );
  }
  paint();
  return {
    el,
    get value() {
      return value;
    },
  };
}

export function field(label, control, hint) {
  return h('label.field', null, h('span.label', null, label), control, hint && h('span.hint', null, hint));
}

/**
 * A request to the server's online-only API (the console, reports and
 * exports) with this device's token. Resolves to the response when it is OK;
 * otherwise throws an Error whose message says in Chinese what went wrong
 * (`offline` when there is no network, `forbidden` for a 403 without its own
 * message) and carries the HTTP `status`.
 */
export async function onlineApi(token, path, { method = 'GET', json, body, headers = {}, offline, forbidden } = {}) {
  if (!navigator.onLine) throw new Error(offline || '当前没有网络，请到有信号的地方再试。');
  const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers }, cache: 'no-store' };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) init.body = body;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new Error('无法连接服务器，请检查网络后重试。');
  }
  if (resp.ok) return resp;
  let message = '';
  try {
    message = (await resp.json()).message || '';
  } catch {}
  let err;
  if (resp.status === 401) err = new Error('登录已失效，请重新登录后再试。');
  else if (resp.status === 403) err = new Error(`没有权限：${message || forbidden || '只有管理员可以这样做'}`);
  else if (resp.status < 500 && message) err = new Error(`操作未完成：${message}`);
  else err = new Error(message ? `服务器出错（${resp.status}）：${message}` : `服务器出错（${resp.status}）`);
  err.status = resp.status;
  throw err;
}

/** Saves a response body as a file, named by its Content-Disposition (filename* first) if it has one; returns the name. */
export async function download(resp, fallbackName) {
  const blob = await resp.blob();
  const disposition = resp.headers.get('content-disposition') || '';
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  const plain = /filename="?([^";]+)"?/.exec(disposition);
  const name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : fallbackName;
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}
