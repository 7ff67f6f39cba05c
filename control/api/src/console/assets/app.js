// Portolan triage console: one ES module, no build step, no inline script (the CSP forbids it).
// Every value from the API is put into the page as text (textContent / attribute values), never as
// HTML: SNI, Host, User-Agent and MDM device names are attacker-controlled.
'use strict';

import { $, h, loadScript } from './dom.js';
import { dataTable } from './tables.js';

const session = { csrf: null, role: null, label: '', canTriage: false, canAdmin: false };
let timers = [];
function clearTimers() { timers.forEach(clearInterval); timers = []; }

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.className = 'show';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ''; }, 4000);
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (resp.status === 401 && path !== '/ui/session') { showSignIn('Your session ended; sign in again.'); }
  if (!resp.ok) {
    const err = new Error((data && (data.detail || data.title)) || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

// ---------------------------------------------------------------- formatting

const fmtTime = (t) => (t ? String(t).replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '—');
const sev = (s) => h('span', { class: `sev sev-${String(s || 'informational').toLowerCase()}` }, s || '?');
const num = (n, d = 1) => (typeof n === 'number' && isFinite(n) ? n.toFixed(d) : '—');
const val = (v) => (v === undefined || v === null || v === '' ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const get = (obj, path) => path.split('.').reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);

const slug = (k) => String(k).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-k': slug(k) }, v instanceof Node ? v : val(v))]));
}

/** Every leaf of a JSON value as [dotted path, value], in order. */
function leaves(v, prefix = '', out = []) {
  if (v && typeof v === 'object' && !(Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object'))) {
    for (const [k, x] of Object.entries(v)) leaves(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, Array.isArray(v) ? v.join(', ') : v]);
  return out;
}

/** "text (+12.5)" → [text, 12.5]. */
function splitReason(r) {
  const m = /^(.*)\s\(([+-]\d+(?:\.\d+)?)\)$/.exec(String(r));
  return m ? [m[1], parseFloat(m[2])] : [String(r), null];
}

// ---------------------------------------------------------------- sign-in

function showSignIn(message) {
  clearTimers();
  session.csrf = null;
  $('#top').hidden = true;
  const view = $('#view');
  const form = signInForm;
  view.replaceChildren(form);
  form.hidden = false;
  $('#sign-in-error').textContent = message || '';
  $('#token').focus();
}

let signInForm = null;

async function signIn(ev) {
  ev.preventDefault();
  const input = $('#token');
  const token = input.value;
  input.value = '';
  try {
    const info = await api('POST', '/ui/session', { token });
    adopt(info);
    location.hash = location.hash && location.hash !== '#/' ? location.hash : '#/inbox';
    route();
  } catch (e) {
    $('#sign-in-error').textContent = `Sign-in refused: ${e.message}`;
  }
}

function adopt(info) {
  session.csrf = info.csrf_token;
  session.role = info.role;
  session.label = info.label;
  session.canTriage = !!info.can_triage;
  session.canAdmin = !!info.can_administer;
  $('#top').hidden = false;
  $('#who').textContent = `${info.label || 'token'} · ${info.role}`;
  document.body.dataset.role = info.role;
}

async function signOut() {
  try { await api('DELETE', '/ui/session'); } catch (_) { /* already over */ }
  showSignIn('Signed out.');
}

// ---------------------------------------------------------------- triage acts (undoable)

const undoStack = [];

async function triage(ids, act, note) {
  const done = [];
  for (const id of ids) {
    try {
      if (act === 'acknowledge') await api('POST', `/api/v1/alerts/${id}/ack`, { note });
      else if (act === 'escalate') await api('POST', `/api/v1/alerts/${id}/escalate`, { note });
      else if (act === 'close') {
        // Archiving an open alert acknowledges it by the same act (same time); its undo takes both back.
        const a = await api('POST', `/api/v1/alerts/${id}/close`, { note });
        done.push({ id, acknowledged: !!(a.acknowledged && a.closed && a.acknowledged.at === a.closed.at) });
        continue;
      }
      else if (act === 'comment') {
        const a = await api('POST', `/api/v1/alerts/${id}/comments`, { text: note });
        const c = (a.comments || []).at(-1);
        done.push({ id, comment_id: c ? c.id : null });
        continue;
      }
      done.push({ id });
    } catch (e) {
      if (e.status !== 409) { toast(`${act} failed: ${e.message}`); break; }
    }
  }
  if (done.length) {
    undoStack.push({ act, done });
    toast(`${act} × ${done.length} — press u to undo`);
  }
  return done.length;
}

async function undo() {
  const last = undoStack.pop();
  if (!last) { toast('Nothing to undo'); return; }
  for (const d of last.done.slice().reverse()) {
    const body = { action: last.act, note: 'undone in the console' };
    if (last.act === 'comment') body.comment_id = d.comment_id;
    try {
      await api('POST', `/api/v1/alerts/${d.id}/undo`, body);
      if (d.acknowledged) await api('POST', `/api/v1/alerts/${d.id}/undo`, { action: 'acknowledge', note: 'undone in the console (acknowledged by the archive)' });
    } catch (e) { toast(`undo failed: ${e.message}`); return; }
  }
  toast(`undid ${last.act} × ${last.done.length}`);
}

function ask(text, fallback) {
  const answer = window.prompt(text, fallback);
  return answer === null ? null : answer.trim() || fallback;
}

function actionButtons(getIds, after) {
  if (!session.canTriage) return null;
  const run = async (act, prompt, fallback) => {
    const ids = getIds();
    if (!ids.length) return;
    const note = ask(prompt, fallback);
    if (note === null) return;
    await triage(ids, act, note);
    after();
  };
  return h('span', { class: 'actions' },
    h('button', { type: 'button', 'data-act': 'acknowledge', onclick: () => run('acknowledge', 'Acknowledge: note', 'acknowledged in the console') }, 'Acknowledge (a)'),
    h('button', { type: 'button', 'data-act': 'escalate', onclick: () => run('escalate', 'Escalate: why', 'escalated in the console') }, 'Escalate (e)'),
    h('button', { type: 'button', 'data-act': 'comment', onclick: () => run('comment', 'Comment', '') }, 'Comment (c)'),
    h('button', { type: 'button', 'data-act': 'close', onclick: () => run('close', 'Archive: note', 'archived in the console') }, 'Archive (#)'),
    h('button', { type: 'button', 'data-act': 'undo', onclick: async () => { await undo(); after(); } }, 'Undo (u)'));
}

// ---------------------------------------------------------------- inbox

const inboxState = { status: 'open', severity: '', q: '', sorting: [{ id: 'score', desc: true }], selected: 0, groups: [] };
const SEVERITIES = ['informational', 'low', 'medium', 'high', 'critical'];

async function inbox(view) {
  const st = inboxState;
  const statusSel = h('select', { id: 'f-status', onchange: (e) => { st.status = e.target.value; load(); } },
    ['open', 'acknowledged', 'closed', ''].map((s) => h('option', { value: s, selected: st.status === s }, s || 'all')));
  const sevSel = h('select', { id: 'f-severity', onchange: (e) => { st.severity = e.target.value; load(); } },
    ['', 'low', 'medium', 'high', 'critical'].map((s) => h('option', { value: s, selected: st.severity === s }, s ? `≥ ${s}` : 'any severity')));
  const search = h('input', { id: 'f-q', type: 'search', placeholder: 'search device, app, protocol, port, server (/)', value: st.q });
  search.addEventListener('input', () => { st.q = search.value; clearTimeout(search.t); search.t = setTimeout(load, 250); });
  const summary = h('span', { class: 'muted', id: 'inbox-summary' });
  const shown = () => grid.rows();
  const select = (i) => {
    st.selected = Math.min(Math.max(0, i), Math.max(0, shown().length - 1));
    for (const tr of grid.table.querySelectorAll('tbody tr[data-key]')) tr.classList.toggle('selected', Number(tr.dataset.index) === st.selected);
    const sel = grid.table.querySelector('tr.selected');
    if (sel && sel.scrollIntoView) sel.scrollIntoView({ block: 'nearest' });
  };
  const grid = await dataTable([
    { id: 'severity', header: 'Severity', value: (g) => SEVERITIES.indexOf(g.severity), cell: (g) => sev(g.severity), sortDescFirst: true },
    { id: 'score', header: 'Score', value: (g) => g.score, cell: (g) => num(g.score), class: 'num', sortDescFirst: true },
    { id: 'device', header: 'Device', value: (g) => g.device_name || g.device_udid || g.src_ip,
      cell: (g) => (g.device_udid ? h('a', { href: `#/device/${encodeURIComponent(g.device_udid)}`, class: 'device-name' }, g.device_name || g.device_udid) : h('span', { class: 'muted' }, `unknown ${g.src_ip}`)) },
    { id: 'app', header: 'App', value: (g) => g.bundle_id || '', cell: (g) => [h('span', { class: 'mono' }, g.bundle_id || '—'), h('div', { class: 'muted' }, g.role)] },
    { id: 'proto', header: 'Protocol / port', value: (g) => `${g.app_proto}/${String(g.dest_port).padStart(5, '0')}`, cell: (g) => `${g.app_proto} ${g.transport}/${g.dest_port}` },
    { id: 'server', header: 'Server', value: (g) => g.server_name || '', cell: (g) => h('span', { class: 'mono server-name' }, g.server_name || '—') },
    { id: 'count', header: 'Alerts', value: (g) => g.count, class: 'num', sortDescFirst: true,
      cell: (g) => [`${g.count}`, g.open !== g.count ? h('div', { class: 'muted' }, `${g.open} open`) : '', g.escalated ? h('div', { class: 'badge' }, 'escalated') : ''] },
    { id: 'first', header: 'First seen', value: (g) => g.first_seen, cell: (g) => fmtTime(g.first_seen) },
    { id: 'last', header: 'Last seen', value: (g) => g.last_seen, cell: (g) => h('a', { href: `#/alert/${g.latest_alert_id}` }, fmtTime(g.last_seen)), sortDescFirst: true },
  ], {
    id: 'inbox',
    sorting: st.sorting,
    onSorting: (s) => { st.sorting = s; },
    empty: 'No alerts match.',
    rowAttrs: (g, i) => ({
      class: i === st.selected ? 'selected' : '', 'data-key': g.key, 'data-alert': g.latest_alert_id, 'data-index': i,
      onclick: () => select(i), ondblclick: () => { location.hash = `#/alert/${g.latest_alert_id}`; },
    }),
  });
  const selIds = () => { const g = shown()[st.selected]; return g ? g.alert_ids : []; };
  view.replaceChildren(
    h('h1', {}, 'Inbox'),
    h('div', { class: 'toolbar' }, statusSel, sevSel, search, actionButtons(selIds, load), summary),
    grid.el,
    h('p', { class: 'help' }, 'Keys: ', h('kbd', {}, 'j'), '/', h('kbd', {}, 'k'), ' move, ', h('kbd', {}, 'Enter'), ' open, ',
      session.canTriage ? [h('kbd', {}, 'a'), ' acknowledge, ', h('kbd', {}, 'e'), ' escalate, ', h('kbd', {}, 'c'), ' comment, ', h('kbd', {}, '#'), ' archive, ', h('kbd', {}, 'u'), ' undo, '] : '',
      h('kbd', {}, '/'), ' search; click a column to sort. Actions apply to every alert of the selected group.'));

  async function load() {
    const p = new URLSearchParams();
    if (st.status) p.set('status', st.status);
    if (st.severity) p.set('severity', st.severity);
    if (st.q) p.set('q', st.q);
    p.set('limit', '1000');
    const data = await api('GET', `/api/v1/alert-groups?${p}`);
    st.groups = data.groups || [];
    summary.textContent = `${st.groups.length} groups, ${data.alerts} alerts`;
    st.selected = Math.min(st.selected, Math.max(0, st.groups.length - 1));
    grid.setData(st.groups);
    select(st.selected);
  }
  keyHandler = async (ev) => {
    if (ev.target && ['INPUT', 'SELECT', 'TEXTAREA'].includes(ev.target.tagName)) {
      if (ev.key === 'Escape') ev.target.blur();
      return;
    }
    const g = shown()[st.selected];
    const act = async (a, prompt, fallback) => { if (!session.canTriage || !g) return; const note = ask(prompt, fallback); if (note === null) return; await triage(g.alert_ids, a, note); load(); };
    switch (ev.key) {
      case 'j': case 'ArrowDown': select(st.selected + 1); break;
      case 'k': case 'ArrowUp': select(st.selected - 1); break;
      case 'Enter': case 'o': if (g) location.hash = `#/alert/${g.latest_alert_id}`; break;
      case '/': ev.preventDefault(); search.focus(); break;
      case 'a': await act('acknowledge', 'Acknowledge: note', 'acknowledged in the console'); break;
      case 'e': await act('escalate', 'Escalate: why', 'escalated in the console'); break;
      case 'c': await act('comment', 'Comment', ''); break;
      case '#': case 'x': await act('close', 'Archive: note', 'archived in the console'); break;
      case 'u': if (session.canTriage) { await undo(); load(); } break;
      default: return;
    }
  };
  await load();
}

// ---------------------------------------------------------------- finding

async function finding(view, id) {
  const a = await api('GET', `/api/v1/alerts/${encodeURIComponent(id)}`);
  const ev = a.evidence || {};
  const flow = ev.flow || {};
  const dev = ev.device || {};
  const app = ev.app || {};
  const st = ev.device_state || {};
  const per = ev.persistence || {};
  const base = ev.baseline || {};
  // The finding's other alerts: the device state at each of its sessions.
  const same = await api('GET', `/api/v1/alerts?limit=1000&${new URLSearchParams(a.device_udid ? { device: a.device_udid } : {})}`);
  const sessions = (same.alerts || []).filter((x) => x.finding_id === a.finding_id);
  const reasons = (a.reasons || []).map(splitReason);
  const refresh = () => route();
  view.replaceChildren(
    h('p', {}, h('a', { href: '#/inbox' }, '← Inbox')),
    h('h1', {}, sev(a.severity), ' ', a.signature, h('span', { class: 'muted' }, `  alert ${a.id} · finding ${a.finding_id}`)),
    h('div', { class: 'toolbar' }, h('span', { id: 'alert-status', class: 'badge' }, a.status), a.escalated ? h('span', { class: 'badge', id: 'alert-escalated' }, 'escalated') : '',
      actionButtons(() => [a.id], refresh)),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, `Score ${num(a.score)}`),
        h('table', { id: 'reasons' }, h('thead', {}, h('tr', {}, h('th', {}, 'Reason'), h('th', {}, 'Weight'))),
          h('tbody', {}, reasons.map(([text, w]) => h('tr', {}, h('td', { class: 'reason' }, text), h('td', { class: 'num weight' }, w === null ? '' : (w >= 0 ? `+${w.toFixed(1)}` : w.toFixed(1)))))))),
      h('div', { class: 'card' }, h('h2', {}, 'Evidence'), kv([
        ['Flow', h('a', { href: `#/flow/${a.id}`, class: 'flow-link' }, `${flow.src_ip}:${flow.src_port} → ${flow.dest_ip}:${flow.dest_port} ${flow.transport || ''}`)],
        ['Protocol', flow.app_proto], ['Indicators', (flow.indicators || []).join(', ')],
        ['SNI', flow.sni], ['QUIC SNI', flow.quic_sni], ['HTTP Host', flow.http_host],
        ['User-Agent', get(flow, 'http.http_user_agent')], ['JA4', get(flow, 'tls.ja4') || get(flow, 'ja4')], ['JA3', get(flow, 'tls.ja3.hash')],
        ['Community ID', flow.community_id],
        ['Bytes', `${flow.bytes_toserver ?? '?'} → / ${flow.bytes_toclient ?? '?'} ←`],
        ['Start / end', `${fmtTime(flow.start_us ? new Date(flow.start_us / 1000).toISOString() : null)} — ${fmtTime(flow.end_us ? new Date(flow.end_us / 1000).toISOString() : null)}`],
      ]))),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Attribution'), kv([
        ['Device', a.device_udid ? h('a', { href: `#/device/${encodeURIComponent(a.device_udid)}`, class: 'device-name' }, dev.name || a.device_udid) : 'not in the inventory'],
        ['Device method', dev.attribution], ['Device confidence', num(dev.confidence, 2)],
        ['App', app.bundle_id], ['App method', app.method], ['App confidence', num(app.confidence, 2)],
        ['Server name', app.server_name], ['Matched domain', app.matched_domain], ['App managed', app.app_managed],
        ['Overall confidence', num(a.confidence, 2)],
      ])),
      h('div', { class: 'card' }, h('h2', {}, 'Baseline and persistence'), kv([
        ['Role', base.role], ['Basis', base.basis], ['Approved ports', (base.approved_ports || []).join(', ')], ['Judgement', base.explanation],
        ['Sessions', per.sessions], ['Interval', per.interval_seconds ? `${num(per.interval_seconds, 0)} s (cv ${num(per.interval_cv, 2)})` : '—'],
        ['Longest session', per.longest_session_s !== undefined ? `${per.longest_session_s} s` : '—'], ['Connected', per.connected_s !== undefined ? `${per.connected_s} s` : '—'],
      ]))),
    h('div', { class: 'card' }, h('h2', {}, 'Device state at each alerted session'),
      h('table', { id: 'sessions' }, h('thead', {}, h('tr', {}, ['Alert', 'Time', 'Flow', 'Lock', 'App state', 'Interaction', 'Score'].map((c) => h('th', {}, c)))),
        h('tbody', {}, sessions.map((s) => { const d = (s.evidence || {}).device_state || {}; const f = (s.evidence || {}).flow || {};
          return h('tr', {}, h('td', {}, h('a', { href: `#/alert/${s.id}` }, `${s.id}`)), h('td', {}, fmtTime(s.time)),
            h('td', { class: 'mono' }, h('a', { href: `#/flow/${s.id}`, class: 'flow-link' }, f.community_id || `${s.src_ip}:${f.src_port} → ${s.dest_ip}:${s.dest_port}`)),
            h('td', {}, val(d.lock_state)), h('td', {}, val(d.app_state)), h('td', {}, d.seconds_since_user_interaction === undefined || d.seconds_since_user_interaction === null ? '—' : `${d.seconds_since_user_interaction} s ago`), h('td', { class: 'num' }, num(s.score)));
        }))),
      h('p', { class: 'muted' }, 'This alert: ', val(st.lock_state), ' / ', val(st.app_state))),
    h('div', { class: 'card' }, h('h2', {}, 'Triage'), kv([
      ['Acknowledged', a.acknowledged ? `${fmtTime(a.acknowledged.at)} by ${a.acknowledged.by}: ${a.acknowledged.note}` : '—'],
      ['Escalated', a.escalated ? `${fmtTime(a.escalated.at)} by ${a.escalated.by}: ${a.escalated.note}` : '—'],
      ['Archived', a.closed ? `${fmtTime(a.closed.at)} by ${a.closed.by}: ${a.closed.note}` : '—'],
    ]), h('ul', { id: 'comments' }, (a.comments || []).map((c) => h('li', {}, `${fmtTime(c.at)} ${c.by}: `, h('span', { class: 'comment' }, c.text))))),
  );
  keyHandler = async (e) => {
    if (e.target && ['INPUT', 'SELECT', 'TEXTAREA'].includes(e.target.tagName)) return;
    if (e.key === 'Escape' || e.key === 'i') location.hash = '#/inbox';
    if (!session.canTriage) return;
    const map = { a: ['acknowledge', 'acknowledged in the console'], e: ['escalate', 'escalated in the console'], '#': ['close', 'archived in the console'], c: ['comment', ''] };
    if (map[e.key]) { const note = ask(map[e.key][0], map[e.key][1]); if (note !== null) { await triage([a.id], map[e.key][0], note); refresh(); } }
    if (e.key === 'u') { await undo(); refresh(); }
  };
}

// ---------------------------------------------------------------- flow record

/** The flow record of one alerted session: every field the dataplane recorded (EVE flow shape). */
async function flowRecord(view, id) {
  const a = await api('GET', `/api/v1/alerts/${encodeURIComponent(id)}`);
  const flow = (a.evidence || {}).flow || {};
  const times = { start_us: 'start', end_us: 'end' };
  const rows = leaves(flow).map(([k, v]) => [k, times[k] && typeof v === 'number' ? `${fmtTime(new Date(v / 1000).toISOString())} (${v})` : val(v)]);
  view.replaceChildren(
    h('p', {}, h('a', { href: `#/alert/${a.id}` }, `← Finding ${a.finding_id} (alert ${a.id})`)),
    h('h1', {}, 'Flow record ', h('span', { class: 'muted mono' }, flow.community_id || `${flow.src_ip}:${flow.src_port} → ${flow.dest_ip}:${flow.dest_port}`)),
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, `Session of ${a.device_name || a.device_udid || a.src_ip} seen ${fmtTime(a.time)}: the flow record as the dataplane handed it to the control plane.`),
      h('table', { id: 'flow-record' }, h('tbody', {}, rows.map(([k, v]) => h('tr', { 'data-k': k }, h('th', { scope: 'row', class: 'mono' }, k), h('td', { class: 'mono' }, v)))))),
  );
  keyHandler = (e) => { if (e.key === 'Escape') location.hash = `#/alert/${a.id}`; };
}

// ---------------------------------------------------------------- devices

async function devices(view) {
  const data = await api('GET', '/api/v1/devices?limit=1000');
  const list = data.devices || [];
  const grid = await dataTable([
    { id: 'name', header: 'Name', value: (d) => d.name || d.udid, cell: (d) => h('a', { href: `#/device/${encodeURIComponent(d.udid)}`, class: 'device-name' }, d.name || d.udid) },
    { id: 'model', header: 'Model', value: (d) => d.model },
    { id: 'os', header: 'OS', value: (d) => `${val(d.os_name)} ${val(d.os_version)}` },
    { id: 'supervised', header: 'Supervised', value: (d) => (d.supervised ? 'yes' : 'no') },
    { id: 'ownership', header: 'Ownership', value: (d) => d.ownership },
    { id: 'address', header: 'Address', value: (d) => d.ip_address, class: 'mono nowrap' },
    { id: 'apps', header: 'Apps', value: (d) => (d.apps || []).length, class: 'num', sortDescFirst: true },
    { id: 'udid', header: 'UDID', value: (d) => d.udid, class: 'mono' },
    { id: 'source', header: 'Source', value: (d) => d.source },
  ], { id: 'devices', sorting: [{ id: 'name', desc: false }], pageSize: 50, empty: 'No device matches.', rowAttrs: (d) => ({ 'data-udid': d.udid }) });
  grid.setData(list);
  const search = h('input', { id: 'devices-q', type: 'search', placeholder: 'search name, model, address, UDID (/)' });
  search.addEventListener('input', () => grid.setSearch(search.value));
  view.replaceChildren(h('h1', {}, `Devices (${data.total ?? list.length})`), h('div', { class: 'toolbar' }, search), grid.el);
  keyHandler = (e) => {
    if (e.key === '/' && e.target === document.body) { e.preventDefault(); search.focus(); }
  };
}

async function device(view, udid) {
  const [detail, alerts, groups] = await Promise.all([
    api('GET', `/api/v1/devices/${encodeURIComponent(udid)}`),
    api('GET', `/api/v1/alerts?limit=1000&device=${encodeURIComponent(udid)}`),
    api('GET', `/api/v1/alert-groups?limit=1000&q=${encodeURIComponent(udid)}`),
  ]);
  const d = detail.device || {};
  const history = detail.history || [];
  const findings = await dataTable([
    { id: 'severity', header: 'Severity', value: (g) => SEVERITIES.indexOf(g.severity), cell: (g) => sev(g.severity), sortDescFirst: true },
    { id: 'score', header: 'Score', value: (g) => g.score, cell: (g) => num(g.score), class: 'num', sortDescFirst: true },
    { id: 'app', header: 'App', value: (g) => g.bundle_id || '', class: 'mono' },
    { id: 'proto', header: 'Protocol / port', value: (g) => `${g.app_proto}/${String(g.dest_port).padStart(5, '0')}`, cell: (g) => `${g.app_proto} ${g.transport}/${g.dest_port}` },
    { id: 'server', header: 'Server', value: (g) => g.server_name || '', class: 'mono' },
    { id: 'count', header: 'Alerts', value: (g) => g.count, class: 'num', sortDescFirst: true, cell: (g) => `${g.count} (${g.open} open)` },
    { id: 'last', header: 'Last seen', value: (g) => g.last_seen, cell: (g) => h('a', { href: `#/alert/${g.latest_alert_id}` }, fmtTime(g.last_seen)), sortDescFirst: true },
  ], { id: 'device-findings', sorting: [{ id: 'score', desc: true }], empty: 'No findings for this device.' });
  findings.setData((groups.groups || []).filter((g) => g.device_udid === d.udid));
  const addresses = [[d.reported_at, d.ip_address, 'current']].concat(history.map((x) => [x.replaced_at, get(x, 'device.ip_address'), 'replaced']));
  // The timeline: every alerted session with the state at that moment, and every state change the MDM
  // reported (a report whose lock state, or app state for its app, differs from the one before).
  const sessions = (alerts.alerts || []).map((a) => ({ t: a.time, kind: 'session', id: a.id,
    what: h('a', { href: `#/alert/${a.id}` }, `session ${a.app_proto} ${a.transport}/${a.dest_port} → ${a.dest_ip} (alert ${a.id}, score ${num(a.score)})`),
    st: get(a, 'evidence.device_state') || {} }));
  const last = { lock: undefined, apps: {} };
  const changes = [];
  for (const x of detail.states || []) {
    const app = x.bundle_id || '(device)';
    const lockChanged = x.lock_state && x.lock_state !== last.lock;
    const appChanged = x.app_state && x.app_state !== last.apps[app];
    if (x.lock_state) last.lock = x.lock_state;
    if (x.app_state) last.apps[app] = x.app_state;
    if (!lockChanged && !appChanged) continue;
    changes.push({ t: x.time, kind: 'state', what: [lockChanged ? x.lock_state : null, appChanged ? `${x.bundle_id || 'front app'} ${x.app_state}` : null].filter(Boolean).join(', '),
      st: { lock_state: x.lock_state || last.lock, app_state: x.app_state } });
  }
  const timeline = sessions.concat(changes).sort((x, y) => (x.t < y.t ? 1 : x.t > y.t ? -1 : 0));
  view.replaceChildren(
    h('p', {}, h('a', { href: '#/devices' }, '← Devices')),
    h('h1', { id: 'device-title' }, d.name || d.udid),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'MDM context'), kv([
        ['UDID', d.udid], ['Serial', d.serial_number], ['Model', `${val(d.model)} (${val(d.model_identifier)})`], ['OS', `${val(d.os_name)} ${val(d.os_version)}`],
        ['Supervised', d.supervised ? 'yes' : 'no'], ['Managed', d.managed ? 'yes' : 'no'], ['Ownership', d.ownership], ['Wi-Fi MAC', d.wifi_mac],
        ['Reported', fmtTime(d.reported_at)], ['Source', d.source],
      ])),
      h('div', { class: 'card' }, h('h2', {}, `Managed apps (${(d.apps || []).length})`),
        h('table', {}, h('tbody', {}, (d.apps || []).map((a) => h('tr', {}, h('td', { class: 'mono' }, a.bundle_id), h('td', {}, val(a.name)), h('td', {}, val(a.version)), h('td', {}, val(a.status)))))))),
    h('div', { class: 'card' }, h('h2', {}, 'Addresses over time'),
      h('table', {}, h('tbody', {}, addresses.map(([t, ip, what]) => h('tr', {}, h('td', {}, fmtTime(t)), h('td', { class: 'mono' }, val(ip)), h('td', { class: 'muted' }, what)))))),
    h('div', { class: 'card' }, h('h2', {}, 'Findings'), findings.el),
    h('div', { class: 'card' }, h('h2', {}, `Timeline: ${sessions.length} alerted sessions, ${changes.length} state changes`),
      h('table', { id: 'timeline' }, h('thead', {}, h('tr', {}, ['Time', 'What', 'Lock / app state'].map((c) => h('th', {}, c)))),
        h('tbody', {}, timeline.map((x) => h('tr', { 'data-kind': x.kind }, h('td', {}, fmtTime(x.t)),
          h('td', {}, x.kind === 'state' ? h('span', { class: 'badge' }, 'state') : h('span', { class: 'badge' }, 'session'), ' ', x.what),
          h('td', {}, `${val(x.st.lock_state)} / ${val(x.st.app_state)}`)))))),
  );
}

// ---------------------------------------------------------------- baselines and exceptions

/** The window the console judges learning and retro-impact over: the 7 days up to the newest alert. */
async function dataWindow() {
  const g = await api('GET', '/api/v1/alert-groups?limit=1000');
  const last = (g.groups || []).map((x) => x.last_seen).sort().at(-1);
  const until = last ? new Date(new Date(last).getTime() + 1000) : new Date();
  const since = new Date(until.getTime() - 7 * 24 * 3600 * 1000);
  return { since: since.toISOString(), until: until.toISOString() };
}

async function baselines(view) {
  const win = await dataWindow();
  const [props, exc] = await Promise.all([
    api('GET', `/api/v1/learning/proposals?${new URLSearchParams(win)}`),
    api('GET', '/api/v1/exceptions'),
  ]);
  const reload = () => route();
  const exceptions = await dataTable([
    { id: 'id', header: 'Id', value: (e) => e.id },
    { id: 'kind', header: 'Kind', value: (e) => e.kind },
    { id: 'owner', header: 'Owner', value: (e) => e.owner },
    { id: 'reason', header: 'Reason', value: (e) => e.reason },
    { id: 'expires', header: 'Expires', value: (e) => e.expires, cell: (e) => fmtTime(e.expires) },
    { id: 'scope', header: 'Scope', class: 'mono', value: (e) => [(e.devices || []).join(' '), (e.destinations || []).join(' '), (e.ports || []).join(' '), (e.app_protos || []).join(' ')].filter(Boolean).join(' · ') || 'everything' },
    { id: 'origin', header: 'Origin', value: (e) => e.origin },
  ], { id: 'exceptions', sorting: [{ id: 'expires', desc: false }], pageSize: 50, empty: 'No exception in force.', rowAttrs: (e) => ({ 'data-id': e.id }) });
  exceptions.setData(exc.exceptions || []);
  const proposals = (props.proposals || []).filter((p) => (p.pairings || []).some((x) => x.proposed));
  const rejected = (props.proposals || []).flatMap((p) => (p.pairings || []).filter((x) => x.rejected).map((x) => [p, x]));
  const form = h('form', { id: 'exception-form', class: 'card' });
  const impact = h('p', { id: 'retro-impact', class: 'muted' });
  const field = (name, label, attrs = {}) => h('label', {}, label, ' ', h('input', { name, ...attrs }));
  const expires = new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  form.append(h('h2', {}, 'New exception'),
    h('div', { class: 'grid2' },
      h('div', {}, field('id', 'Id', { required: true }),
        h('label', {}, 'Kind ', h('select', { name: 'kind' }, ['proxy', 'relay', 'developer', 'other'].map((k) => h('option', { value: k }, k)))),
        field('owner', 'Owner', { required: true }), field('reason', 'Reason', { required: true, size: 40 }), field('expires', 'Expires (RFC 3339)', { value: expires })),
      h('div', {}, field('devices', 'Devices (UDIDs, comma-separated; empty: all)'), field('destinations', 'Destinations (CIDR or domain suffix)'),
        field('ports', 'Ports (comma-separated)'), field('app_protos', 'Protocols (comma-separated)'))),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', id: 'check-impact' }, 'Check retro-impact'),
      session.canAdmin ? h('button', { type: 'submit', class: 'primary', id: 'save-exception', disabled: true }, 'Save exception') : h('span', { class: 'muted' }, 'Only an admin can save exceptions.')),
    impact);
  const list = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);
  const body = () => { const f = new FormData(form); return {
    id: f.get('id'), kind: f.get('kind'), owner: f.get('owner'), reason: f.get('reason'), expires: f.get('expires'),
    devices: list(f.get('devices')), destinations: list(f.get('destinations')), ports: list(f.get('ports')).map(Number), app_protos: list(f.get('app_protos')),
  }; };
  const save = form.querySelector('#save-exception');
  form.addEventListener('input', () => { if (save) save.disabled = true; impact.textContent = ''; });
  form.querySelector('#check-impact').addEventListener('click', async () => {
    try {
      const r = await api('POST', `/api/v1/exceptions/retro-impact?${new URLSearchParams({ until: win.until, days: '7' })}`, body());
      impact.textContent = `This exception would have suppressed ${r.would_suppress} of ${r.alerts_in_window} alerts in the last 7 days (${fmtTime(r.window_from)} — ${fmtTime(r.window_to)}).`;
      impact.dataset.count = String(r.would_suppress);
      if (save) save.disabled = false;
    } catch (e) { impact.textContent = `Not a valid exception: ${e.message}`; }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try { await api('POST', '/api/v1/exceptions', body()); toast('Exception saved'); reload(); } catch (err) { impact.textContent = `Refused: ${err.message}`; }
  });
  view.replaceChildren(
    h('h1', {}, 'Baselines & exceptions'),
    h('div', { class: 'card' }, h('h2', {}, 'Learning proposals'), h('p', { class: 'muted' }, `Pairings seen ${fmtTime(props.window_from)} — ${fmtTime(props.window_to)}.`),
      h('table', { id: 'proposals' }, h('thead', {}, h('tr', {}, ['Role', 'Protocol', 'Port', 'Sessions', 'First / last seen', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, proposals.flatMap((p) => p.pairings.filter((x) => x.proposed).map((x) => h('tr', { 'data-role': p.role, 'data-proto': x.app_proto, 'data-port': x.port },
          h('td', {}, p.role), h('td', {}, `${x.app_proto} ${x.transport}`), h('td', { class: 'num' }, `${x.port}`), h('td', { class: 'num' }, `${x.sessions}`),
          h('td', {}, `${fmtTime(x.first_seen)} — ${fmtTime(x.last_seen)}`),
          h('td', {}, session.canAdmin ? [
            h('button', { type: 'button', class: 'approve', onclick: async () => {
              const reason = ask(`Approve ${x.app_proto}/${x.port} for ${p.role}: reason`, 'approved from learning in the console');
              if (reason === null) return;
              try { await api('POST', `/api/v1/learning/proposals/${encodeURIComponent(p.id)}/approve`, { reason, since: win.since, until: win.until, pairings: [{ app_proto: x.app_proto, transport: x.transport, port: x.port }] }); toast('Approved'); reload(); } catch (e) { toast(`Refused: ${e.message}`); }
            } }, 'Approve'),
            h('button', { type: 'button', class: 'reject', onclick: async () => {
              const reason = ask(`Reject ${x.app_proto}/${x.port} for ${p.role}: reason`, 'rejected from learning in the console');
              if (reason === null) return;
              try { await api('POST', `/api/v1/learning/proposals/${encodeURIComponent(p.id)}/reject`, { reason, since: win.since, until: win.until, pairings: [{ app_proto: x.app_proto, transport: x.transport, port: x.port }] }); toast('Rejected'); reload(); } catch (e) { toast(`Refused: ${e.message}`); }
            } }, 'Reject'),
          ] : '')))))),
      proposals.length ? '' : h('p', { class: 'muted' }, 'No proposals in this window.'),
      rejected.length ? [h('h2', {}, 'Rejected pairings'),
        h('table', { id: 'rejected' }, h('thead', {}, h('tr', {}, ['Role', 'Protocol', 'Port', 'Sessions', 'Rejected', 'By', 'Reason'].map((c) => h('th', {}, c)))),
          h('tbody', {}, rejected.map(([p, x]) => h('tr', { 'data-role': p.role, 'data-proto': x.app_proto, 'data-port': x.port },
            h('td', {}, p.role), h('td', {}, `${x.app_proto} ${x.transport}`), h('td', { class: 'num' }, `${x.port}`), h('td', { class: 'num' }, `${x.sessions}`),
            h('td', {}, fmtTime(x.rejected.at)), h('td', {}, x.rejected.by), h('td', { class: 'reason' }, x.rejected.note)))))] : ''),
    form,
    h('div', { class: 'card' }, h('h2', {}, 'Exceptions in force'), exceptions.el),
  );
}

// ---------------------------------------------------------------- health

async function loadUplot() {
  await loadScript('/ui/assets/vendor/uPlot.iife.min.js', '/ui/assets/vendor/uPlot.min.css');
  return window.uPlot;
}

const PALETTE = ['#1f5fbf', '#c0392b', '#2e7d32', '#d98200', '#6a1b9a', '#00838f', '#5d4037', '#607080'];

async function health(view) {
  const uPlot = await loadUplot();
  const charts = h('div', { class: 'charts' });
  const drops = h('table', { id: 'drops' });
  const imports = h('div', { class: 'card', id: 'imports' });
  const status = h('p', { class: 'muted', id: 'stats-updated' });
  const tableUse = h('p', { id: 'flow-table-use' });
  view.replaceChildren(h('h1', {}, 'Health'), status, tableUse, charts,
    h('div', { class: 'grid2' }, h('div', { class: 'card' }, h('h2', {}, 'Drops by reason (totals)'), drops), imports));
  const N = 120;
  const t = [];
  const plots = {};
  /** A chart whose series are `labels`; re-made when the labels change (a new drop reason). */
  const chart = (key, title, labels) => {
    const have = plots[key];
    if (have && have.labels.join('|') === labels.join('|')) return have;
    let el = charts.querySelector(`[data-chart="${key}"]`);
    if (!el) { el = h('div', { class: 'card chart', 'data-chart': key }); charts.append(el); }
    el.replaceChildren(h('h2', {}, title));
    if (have) have.plot.destroy();
    const series = [{}].concat(labels.map((label, i) => ({ label, stroke: PALETTE[i % PALETTE.length], width: 2 })));
    // Series new to the chart have no value before this tick (t already holds it; push adds it).
    const data = Object.fromEntries(labels.map((l) => [l, (have && have.data[l]) || t.slice(1).map(() => null)]));
    const plot = new uPlot({ width: 440, height: 190, series, axes: [{}, { size: 60 }] }, [[]].concat(labels.map(() => [])), el);
    plots[key] = { labels, plot, data };
    return plots[key];
  };
  const push = (key, title, values) => {
    const c = chart(key, title, Object.keys(values));
    for (const [l, v] of Object.entries(values)) { c.data[l].push(v); if (c.data[l].length > N) c.data[l].shift(); }
  };
  let prev = null;
  let inventory = { devices: null, imports: null };
  async function importStatus() {
    try {
      const [a, d] = await Promise.all([api('GET', '/api/v1/audit?action=inventory_imported&limit=1000'), api('GET', '/api/v1/devices?limit=1')]);
      const entries = a.entries || [];
      const last = entries.at(-1);
      inventory = { devices: d.total, imports: entries.length };
      imports.replaceChildren(h('h2', {}, 'Inventory import'), kv([
        ['Devices', d.total], ['Imports', entries.length], ['Last import', last ? fmtTime(last.time) : 'none'],
        ['By', last ? last.actor : '—'], ['Detail', last ? last.reason : '—'],
      ]));
    } catch (_) { /* shown on the next tick */ }
  }
  async function tick() {
    let s;
    try { s = await api('GET', '/api/v1/stats'); } catch (_) { return; }
    await importStatus();
    const workers = s.workers || [];
    const sum = (f) => workers.reduce((n, w) => n + (Number(f(w)) || 0), 0);
    const now = Date.now() / 1000;
    const byReason = {};
    for (const w of workers) for (const [r, n] of Object.entries(w.drops || {})) byReason[r] = (byReason[r] || 0) + n;
    for (const p of s.ports || []) { byReason[`port ${p.name}: rx_missed`] = p.rx_missed; byReason[`port ${p.name}: rx_nombuf`] = p.rx_nombuf; byReason[`port ${p.name}: rx_errors`] = p.rx_errors; if (p.rx_kernel_dropped != null) byReason[`port ${p.name}: rx_kernel_dropped`] = p.rx_kernel_dropped; }
    const cur = { t: now, packets: sum((w) => w.packets), bytes: sum((w) => w.bytes), byReason };
    const dt = prev ? Math.max(now - prev.t, 0.001) : 1;
    const rate = (a, b) => (prev ? Math.max(0, (a - b) / dt) : 0);
    t.push(now); if (t.length > N) t.shift();
    push('pps', 'Packets per second', { pps: rate(cur.packets, prev && prev.packets) });
    push('bps', 'Bits per second', { bps: rate(8 * cur.bytes, prev && 8 * prev.bytes) });
    // Every reason counted so far gets its own series (a reason at zero stays out of the legend).
    const reasons = Object.keys(byReason).filter((r) => byReason[r] > 0).sort();
    const all = Object.values(byReason).reduce((a, b) => a + b, 0);
    const before = prev ? Object.values(prev.byReason).reduce((a, b) => a + b, 0) : 0;
    push('drops', 'Drops per second by reason', Object.fromEntries([['all reasons', rate(all, before)]]
      .concat(reasons.map((r) => [r, rate(byReason[r], prev && (prev.byReason[r] || 0))]))));
    push('ring', 'Hand-off ring drops (total)', { 'ring drops': sum((w) => w.ring_drops) });
    const used = sum((w) => w.flows_active);
    const capacity = sum((w) => w.flows_capacity);
    push('flows', 'Flow table: flows used and capacity', { used, capacity });
    push('inventory', 'Inventory: devices and imports', { devices: inventory.devices, imports: inventory.imports });
    for (const c of Object.values(plots)) c.plot.setData([t.slice()].concat(c.labels.map((l) => c.data[l])));
    prev = cur;
    tableUse.textContent = capacity
      ? `Flow table: ${used} of ${capacity} flows in use (${((100 * used) / capacity).toFixed(2)} %) over ${workers.length} workers.`
      : `Flow table: ${used} flows in use (capacity not reported).`;
    tableUse.dataset.used = String(used);
    tableUse.dataset.capacity = String(capacity);
    drops.replaceChildren(h('tbody', {}, Object.entries(byReason).map(([r, n]) => h('tr', {}, h('td', {}, r), h('td', { class: 'num' }, `${n}`)))));
    status.textContent = `Dataplane counters at ${fmtTime(s.updated_at)}: ${cur.packets} packets, ${workers.length} workers, ${sum((w) => w.flows_created)} flows created, ${sum((w) => w.prefiltered)} prefiltered.`;
    status.dataset.ticks = String(Number(status.dataset.ticks || 0) + 1);
  }
  await tick();
  timers.push(setInterval(tick, 2000));
}

// ---------------------------------------------------------------- router

let keyHandler = null;
document.addEventListener('keydown', (e) => { if (keyHandler && !e.ctrlKey && !e.metaKey && !e.altKey) keyHandler(e); });

async function route() {
  if (!session.csrf) return;
  clearTimers();
  keyHandler = null;
  const view = $('#view');
  const [, screen, arg] = (location.hash || '#/inbox').split('/');
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.dataset.screen === (screen === 'alert' || screen === 'flow' ? 'inbox' : screen === 'device' ? 'devices' : screen));
  try {
    if (screen === 'alert' && arg) await finding(view, decodeURIComponent(arg));
    else if (screen === 'flow' && arg) await flowRecord(view, decodeURIComponent(arg));
    else if (screen === 'devices') await devices(view);
    else if (screen === 'device' && arg) await device(view, decodeURIComponent(arg));
    else if (screen === 'baselines') await baselines(view);
    else if (screen === 'health') await health(view);
    else await inbox(view);
    document.body.dataset.screen = screen || 'inbox';
  } catch (e) {
    if (e.status !== 401) view.replaceChildren(h('p', { class: 'error' }, `Could not load this screen: ${e.message}`));
  }
}

async function start() {
  signInForm = $('#sign-in');
  signInForm.addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  try {
    adopt(await api('GET', '/ui/session'));
    await route();
  } catch (_) {
    showSignIn('');
  }
}

start();
