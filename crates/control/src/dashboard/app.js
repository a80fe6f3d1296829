// The dashboard: polls the control plane's read API and draws what it
// says. Every value reaches the page as text (textContent), never as HTML.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const data = {};
let filter = '';
let picked = null; // the trace id the user clicked, else the newest

function el(tag, attrs = {}, ...children) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    // Styles through the CSSOM: the page's policy refuses style attributes.
    if (k === 'style') Object.assign(e.style, v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// The admin token comes in the address's fragment (`weft dashboard` prints
// it), which the browser never sends; it is kept for this tab and taken
// out of the address bar.
const token = (() => {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem('weft-token', decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname);
  }
  return sessionStorage.getItem('weft-token');
})();

async function getJSON(path) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const r = await fetch(path, { cache: 'no-store', headers });
  if (r.status === 401) throw new Error('the mesh\'s reads need its admin token: open the address `weft dashboard` prints');
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

const pct = (x) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(2)}%`);
const ms = (x) => (x === null || x === undefined ? '-' : x < 10 ? `${x.toFixed(1)} ms` : `${Math.round(x)} ms`);
const rps = (x) => (x || 0).toFixed(1);
const level = (rate) => (rate === null || rate === undefined ? 'idle' : rate >= 0.99 ? 'good' : rate >= 0.95 ? 'warn' : 'bad');
const shown = (...names) => !filter || names.some((n) => (n || '').toLowerCase().includes(filter));
const short = (name) => (name || '').replace(/\.svc\.cluster\.local$/, '').replace(/^unknown\.unknown$/, 'unknown');

function human(secs) {
  const s = Math.abs(Math.round(secs));
  const t = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m` : `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
  return secs < 0 ? `expired ${t} ago` : t;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
  if (rows.length === 0) tbody.append(el('tr', {}, el('td', { class: 'empty', colspan: 8 }, filter ? 'nothing matches the filter' : 'none yet')));
}

// Workloads as nodes in columns by their depth from the callers nobody
// calls; an edge per (caller, service, serving workload).
function drawGraph() {
  const box = document.getElementById('graph');
  const edges = (data.edges?.rows || []).filter((e) => shown(e.source, e.service, e.destination));
  if (edges.length === 0) {
    box.replaceChildren(el('p', { class: 'empty' }, filter ? 'nothing matches the filter' : 'no traffic in the last 60 s'));
    return;
  }
  const nodes = new Map();
  const node = (n) => nodes.get(n) || nodes.set(n, { name: n, depth: 0, bad: false }).get(n);
  for (const e of edges) { node(e.source); node(e.destination); }
  for (let pass = 0; pass < nodes.size; pass++) {
    let moved = false;
    for (const e of edges) {
      const [a, b] = [node(e.source), node(e.destination)];
      if (a !== b && b.depth < a.depth + 1 && a.depth + 1 < nodes.size) { b.depth = a.depth + 1; moved = true; }
    }
    if (!moved) break;
  }
  const columns = [];
  for (const n of [...nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    (columns[n.depth] ||= []).push(n);
  }
  columns.forEach((col, d) => col.forEach((n, i) => { n.x = 90 + d * 300; n.y = 40 + i * 80; }));
  const width = 180 + (columns.length - 1) * 300 + 120;
  const height = 40 + Math.max(...columns.map((c) => c.length)) * 80;
  const svg = el('svg:svg', { width, height, viewBox: `0 0 ${width} ${height}` });
  for (const e of edges) {
    const [a, b] = [node(e.source), node(e.destination)];
    const cls = level(e.successRate);
    if (cls === 'bad') b.bad = true;
    const label = `${short(e.service)}: ${rps(e.rps)} rps · ${pct(e.successRate)} · p99 ${ms(e.p99Ms)}`;
    svg.append(el('svg:g', { class: `edge ${cls}`, 'data-from': e.source, 'data-to': e.destination, 'data-service': e.service, 'data-rps': e.rps, 'data-success': e.successRate },
      el('svg:line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
      // Past the middle: edges that fan out of one caller part there.
      el('svg:text', { x: a.x + (b.x - a.x) * 0.6, y: a.y + (b.y - a.y) * 0.6 - 6, 'text-anchor': 'middle' }, label)));
  }
  for (const n of nodes.values()) {
    svg.append(el('svg:g', { class: `node${n.bad ? ' bad' : ''}`, 'data-name': n.name },
      el('svg:circle', { cx: n.x, cy: n.y, r: 12 }),
      el('svg:text', { x: n.x, y: n.y + 28, 'text-anchor': 'middle' }, short(n.name))));
  }
  box.replaceChildren(svg);
}

function spark(points, key) {
  const values = (points || []).map((p) => p[key]).filter((v) => typeof v === 'number');
  const svg = el('svg:svg', { class: 'spark', width: 120, height: 24 });
  if (values.length < 2) return svg;
  const max = Math.max(...values) || 1;
  const step = 120 / (values.length - 1);
  svg.append(el('svg:polyline', { points: values.map((v, i) => `${(i * step).toFixed(1)},${(22 - (v / max) * 20).toFixed(1)}`).join(' ') }));
  return svg;
}

function signals(r) {
  const cls = level(r.successRate);
  return [el('td', { class: `num ${cls}` }, pct(r.successRate)), el('td', { class: 'num' }, rps(r.rps)),
    el('td', { class: 'num' }, ms(r.p50Ms)), el('td', { class: 'num' }, ms(r.p95Ms)), el('td', { class: 'num' }, ms(r.p99Ms))];
}

function drawTables() {
  const series = data.series?.names || {};
  fill(document.querySelector('#services tbody'), (data.services?.rows || []).filter((r) => shown(r.name)).map((r) =>
    el('tr', { 'data-name': r.name }, el('td', {}, short(r.name)), ...signals(r), el('td', {}, spark(series[r.name], 'rps')), el('td', {}, spark(series[r.name], 'p99Ms')))));
  fill(document.querySelector('#workloads tbody'), (data.workloads?.rows || []).filter((r) => shown(r.name)).map((r) =>
    el('tr', { 'data-name': r.name }, el('td', {}, short(r.name)), ...signals(r))));
  const certs = new Map((data.certs?.proxies || []).map((c) => [c.id, c]));
  const latest = data.version?.version || 0;
  fill(document.querySelector('#proxies tbody'), (data.proxies || []).map((p) => {
    const [kind, address, name] = p.id.split('~').length === 3 ? p.id.split('~') : ['-', '-', p.id];
    const state = p.last_nack ? 'nack' : p.synced >= latest ? 'synced' : 'stale';
    const c = certs.get(p.id) || {};
    const m = c.mtls || {};
    const cert = c.error ? `? (${c.error})` : m.lastRenewalError ? `renewal failing: ${m.lastRenewalError}` : m.expiresInSeconds !== undefined && m.expiresInSeconds !== null ? human(m.expiresInSeconds) : '-';
    return { name, row: el('tr', { 'data-name': name, 'data-state': state }, el('td', {}, name), el('td', {}, kind), el('td', {}, address),
      el('td', { class: { synced: 'good', stale: 'warn', nack: 'bad' }[state] }, state), el('td', { class: 'num' }, p.synced),
      el('td', { class: m.lastRenewalError ? 'bad' : '' }, cert), el('td', { class: 'bad' }, p.last_nack || '')) };
  }).filter((p) => shown(p.name)).map((p) => p.row));
}

function drawTraces() {
  const list = (data.traces?.traces || []).filter((t) => shown(t.root, ...(t.services || [])));
  const current = picked || list[0]?.traceId;
  fill(document.querySelector('#traces tbody'), list.map((t) => {
    const row = el('tr', { 'data-trace': t.traceId, class: t.traceId === current ? 'selected' : '' },
      el('td', {}, t.traceId.slice(0, 12)), el('td', {}, t.root || '-'), el('td', { class: 'num' }, ms(t.durationMs)),
      el('td', { class: 'num' }, t.spans), el('td', { class: t.errors ? 'num bad' : 'num' }, t.errors),
      el('td', {}, (t.services || []).join(', ')), el('td', {}, new Date(t.startUnixMs).toLocaleTimeString()));
    row.addEventListener('click', () => { picked = t.traceId; loadTrace(); });
    return row;
  }));
}

// One row per span, indented under its parent, its bar placed on the
// trace's timeline.
function drawWaterfall(trace) {
  const box = document.getElementById('waterfall');
  const spans = trace?.spans || [];
  if (spans.length === 0) { box.replaceChildren(); return; }
  const t0 = Math.min(...spans.map((s) => s.startNs));
  const total = Math.max(1, Math.max(...spans.map((s) => s.endNs)) - t0);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const depth = (s) => { let d = 0; for (let p = byId.get(s.parent); p && d < spans.length; p = byId.get(p.parent)) d++; return d; };
  const rows = spans.map((s) => {
    const left = ((s.startNs - t0) / total) * 100;
    const width = Math.max(0.3, ((s.endNs - s.startNs) / total) * 100);
    const a = s.attributes || {};
    const title = `${s.service}: ${s.name} (${s.kind}) ${a['http.status_code'] ?? ''} ${a.response_flags ?? ''} ${a.upstream_cluster ?? ''}`;
    return el('div', { class: 'span-row', 'data-span': s.spanId, title },
      el('span', { class: 'label', style: { paddingLeft: `${depth(s)}em` } }, `${s.service}: ${s.name}`),
      el('span', { class: 'track' }, el('span', { class: `bar ${s.kind}${s.error ? ' error' : ''}`, style: { left: `${left.toFixed(2)}%`, width: `${width.toFixed(2)}%` } })),
      el('span', { class: 'num' }, ms((s.endNs - s.startNs) / 1e6)));
  });
  box.replaceChildren(el('p', {}, `trace ${trace.traceId}: ${spans.length} spans over ${ms(total / 1e6)}`), ...rows);
}

async function loadTrace() {
  drawTraces();
  const id = picked || data.traces?.traces?.[0]?.traceId;
  if (!id) { drawWaterfall(null); return; }
  try { drawWaterfall(await getJSON(`/debug/traces/${id}`)); } catch (e) { picked = null; }
}

function drawHealth() {
  const h = data.health;
  const box = document.getElementById('health');
  if (!h) return;
  const bad = (h.hosts || []).filter((x) => (x.unhealthyIn || []).length > 0 && shown(x.cluster, x.address));
  const parts = [el('p', {}, `${h.summary?.hosts || 0} upstream hosts seen by ${(h.proxies?.reached || []).length} proxies; ${bad.length} unhealthy somewhere`)];
  if (bad.length) {
    const rows = bad.flatMap((x) => x.unhealthyIn.map((u) => el('tr', {}, el('td', {}, x.cluster), el('td', {}, x.address), el('td', {}, u.proxy), el('td', { class: 'bad' }, `${u.health}${u.lastFailure ? ` (${u.lastFailure})` : ''}`), el('td', { class: 'num' }, u.ejections ?? 0))));
    parts.push(el('table', {}, el('thead', {}, el('tr', {}, ...['cluster', 'host', 'seen by', 'health', 'ejections'].map((t) => el('th', {}, t)))), el('tbody', {}, ...rows)));
  }
  for (const u of h.proxies?.unreachable || []) parts.push(el('p', { class: 'warn' }, `${u.proxy}: ${u.error}`));
  box.replaceChildren(...parts);
}

function drawConfig() {
  const c = data.config;
  if (!c) return;
  const parts = [el('p', {}, `version ${c.version} in force, ${(c.resources || []).length} resources`)];
  if ((c.rejected || []).length) parts.push(el('p', { class: 'bad' }, 'the latest edit was rejected; the last good config keeps serving:'), el('ul', { class: 'diag bad' }, ...c.rejected.map((d) => el('li', {}, d))));
  if ((c.warnings || []).length) parts.push(el('p', { class: 'warn' }, `${c.warnings.length} warnings:`), el('ul', { class: 'diag' }, ...c.warnings.map((d) => el('li', {}, d))));
  document.getElementById('config').replaceChildren(...parts);
}

function draw() {
  drawGraph();
  drawTables();
  drawTraces();
  drawHealth();
  drawConfig();
  const n = (data.proxies || []).length;
  const nacks = (data.proxies || []).filter((p) => p.last_nack).length;
  document.getElementById('summary').textContent = `config version ${data.version?.version ?? '?'} · ${n} proxies${nacks ? ` · ${nacks} refusing config` : ''}`;
}

async function refresh() {
  try {
    const q = 'window=60';
    [data.version, data.edges, data.services, data.workloads, data.series, data.proxies, data.certs, data.config] = await Promise.all([
      getJSON('/debug/version'), getJSON(`/debug/stats?by=edge&${q}`), getJSON(`/debug/stats?by=service&${q}`),
      getJSON(`/debug/stats?by=workload&${q}`), getJSON('/debug/stats/series?by=service&window=300'),
      getJSON('/debug/proxies'), getJSON('/debug/certs'), getJSON('/debug/config')]);
    data.traces = await getJSON('/debug/traces?limit=20');
    draw();
    await loadTrace();
    document.getElementById('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById('updated').textContent = `cannot reach the control plane: ${e.message}`;
  }
}

async function refreshHealth() {
  try { data.health = await getJSON('/debug/health'); drawHealth(); } catch (e) { /* shown by refresh */ }
}

document.getElementById('filter').addEventListener('input', (e) => { filter = e.target.value.trim().toLowerCase(); draw(); });
refresh();
refreshHealth();
setInterval(refresh, 2000);
setInterval(refreshHealth, 5000);
