/*
 * stockwire live dashboard: plain browser JavaScript modules (this one, chart.js, sse.js), no build step,
 * no dependencies.
 *
 * The bearer token comes from the URL fragment (#token=…, removed from the address bar at once and kept in
 * sessionStorage, so it never reaches a server log or the history) or from the form. Every call sends it as
 * Authorization: Bearer. Live updates come from GET /v1/dashboard/events, read with fetch + ReadableStream
 * (EventSource cannot send the Authorization header); each `change` patches the affected rows in place.
 * Without the live feed (503, network trouble) the page polls every 5 s until the stream is back.
 * Every value reaches the DOM through textContent, never as HTML.
 */
import { drawStockChart, reconstructHistory } from './chart.js';
import { readEventStream } from './sse.js';

const TOKEN_KEY = 'stockwire.dashboard.token';
const POLL_MS = 5000;
const STALE_MS = 45000;
const SYNC_MS = 5000;
const REORDER_MS = 30000;
const ORDERS_SHOWN = 15;
const MOVEMENTS_SHOWN = 15;
const CHART_MOVEMENTS = 500;
const PREFERRED_REORDER_COLS = ['sku', 'location', 'sellable', 'reorder_point', 'days_of_cover', 'reorder_on', 'suggested_qty'];

const $ = (id) => document.getElementById(id);
const state = {
  token: null,
  today: null,
  /** "sku|location" → { data, tr } */
  stock: new Map(),
  /** order id → { data, tr } */
  orders: new Map(),
  movementIds: new Set(),
  live: 'off',
  stream: null,
  pollTimer: null,
  syncTimer: null,
  reorderTimer: null,
  reconnectTimer: null,
  reconnectDelay: 1000,
  debounced: new Map(),
  chartSku: '',
};

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- small DOM helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')));
  return node;
}

function setText(node, text) {
  const value = String(text ?? '');
  if (node.textContent === value) return false;
  node.textContent = value;
  return true;
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '');
const fmtDateTime = (iso) => (iso ? new Date(iso).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) : '');
const signed = (n) => (n > 0 ? `+${n}` : String(n));

function fmtBytes(n) {
  if (n === null || n === undefined) return 'unknown';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function fmtLag(ms) {
  if (ms === null || ms === undefined) return 'unknown';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

/** Runs fn once per key after `ms` of quiet (bursts of changes → one request). */
function debounce(key, ms, fn) {
  clearTimeout(state.debounced.get(key));
  state.debounced.set(key, setTimeout(() => {
    state.debounced.delete(key);
    fn();
  }, ms));
}

// ---- token and API -----------------------------------------------------------------------------

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get('token');
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${state.token}`, Accept: 'application/json' }, cache: 'no-store' });
  if (!res.ok) {
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    const err = new HttpError(res.status, body && body.error && body.error.code, (body && body.error && body.error.message) || res.statusText);
    if (res.status === 401) signOut('The token was refused (expired or invalid): paste a new one.');
    throw err;
  }
  return res.json();
}

/** Runs a loader; a failure shows on the status line instead of breaking the page. */
async function attempt(what, fn) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) return;
    console.warn(`dashboard: ${what} failed`, err);
  }
}

// ---- stock table -------------------------------------------------------------------------------

const STOCK_COLS = ['sku', 'name', 'location', 'on_hand', 'reserved', 'available', 'reorder_point', 'nearest_expiry'];
const NUMERIC = new Set(['on_hand', 'reserved', 'available', 'reorder_point']);
const stockKey = (r) => `${r.sku}|${r.location}`;

function stockTr(key) {
  const tr = el('tr', { 'data-key': key });
  for (const col of STOCK_COLS) tr.append(el('td', { 'data-col': col, class: NUMERIC.has(col) ? 'num' : undefined }));
  return tr;
}

function insertStockTr(entry) {
  const tbody = $('stock-table').tBodies[0];
  const order = (d) => `${d.location}\u0000${d.sku}`;
  const mine = order(entry.data);
  for (const other of tbody.rows) {
    const o = state.stock.get(other.dataset.key);
    if (o && order(o.data) > mine) {
      tbody.insertBefore(entry.tr, other);
      return;
    }
  }
  tbody.append(entry.tr);
}

function expiryOf(data) {
  if (!data.nearest_expiry || !state.today) return data.expiry || null;
  if (data.nearest_expiry <= state.today) return 'expired';
  const soon = new Date(Date.parse(`${state.today}T00:00:00Z`) + 30 * 86400000).toISOString().slice(0, 10);
  return data.nearest_expiry <= soon ? 'expiring' : null;
}

function renderStockRow(entry, { flash = false } = {}) {
  const d = entry.data;
  d.available = d.on_hand - d.reserved;
  let changed = false;
  for (const td of entry.tr.cells) {
    const col = td.dataset.col;
    changed = setText(td, d[col] === null || d[col] === undefined ? (col === 'nearest_expiry' ? '—' : '') : d[col]) || changed;
  }
  const expiry = expiryOf(d);
  entry.tr.classList.toggle('low', d.available < d.reorder_point);
  entry.tr.classList.toggle('expiring', expiry === 'expiring');
  entry.tr.classList.toggle('expired', expiry === 'expired');
  entry.tr.dataset.version = String(d.version);
  entry.tr.hidden = Boolean($('location-filter').value) && $('location-filter').value !== d.location;
  const exp = entry.tr.querySelector('td[data-col="nearest_expiry"]');
  if (expiry) exp.title = expiry === 'expired' ? 'expired stock on hand' : 'expires within 30 days';
  else exp.removeAttribute('title');
  if (flash && changed) {
    entry.tr.classList.add('changed');
    setTimeout(() => entry.tr.classList.remove('changed'), 700);
  }
}

/** Merges a row (full, from GET /v1/dashboard/stock, or partial, from a change); quantities only move forward by version. */
function upsertStock(row, { flash = false, commitTime } = {}) {
  const key = stockKey(row);
  let entry = state.stock.get(key);
  if (!entry) {
    if (row.name === undefined) return scheduleRowFetch(row.sku, row.location);
    entry = { data: { ...row }, tr: stockTr(key) };
    state.stock.set(key, entry);
    insertStockTr(entry);
  } else {
    const newer = row.version === undefined || row.version >= entry.data.version;
    for (const [k, v] of Object.entries(row)) {
      if (['on_hand', 'reserved', 'available', 'version'].includes(k) && !newer) continue;
      entry.data[k] = v;
    }
    if (!newer && commitTime) return;
  }
  if (commitTime) entry.tr.dataset.commitTime = commitTime;
  renderStockRow(entry, { flash });
  $('stock-empty').hidden = state.stock.size > 0;
}

function removeStock(key) {
  const entry = state.stock.get(key);
  if (!entry) return;
  entry.tr.remove();
  state.stock.delete(key);
}

function refreshSelectors() {
  const locations = [...new Set([...state.stock.values()].map((e) => e.data.location))].sort();
  fillSelect($('location-filter'), [['', 'all'], ...locations.map((l) => [l, l])]);
  const skus = [...new Map([...state.stock.values()].map((e) => [e.data.sku, e.data.name])).entries()].sort((a, b) => a[0].localeCompare(b[0]));
  fillSelect($('chart-sku'), skus.map(([sku, name]) => [sku, `${sku} — ${name}`]));
  if (!state.chartSku && skus.length) {
    // start with a product that needs attention, else the first
    const low = [...state.stock.values()].find((e) => e.tr.classList.contains('low'));
    state.chartSku = low ? low.data.sku : skus[0][0];
    $('chart-sku').value = state.chartSku;
    void attempt('chart', loadChart);
  }
}

function fillSelect(select, options) {
  const wanted = options.map(([v]) => v).join('\u0000');
  const current = [...select.options].map((o) => o.value).join('\u0000');
  if (wanted === current) return;
  const value = select.value;
  select.replaceChildren(...options.map(([v, label]) => el('option', { value: v }, label)));
  if (options.some(([v]) => v === value)) select.value = value;
}

async function loadStock() {
  const { today, stock } = await api('/v1/dashboard/stock');
  state.today = today;
  const seen = new Set();
  for (const row of stock) {
    seen.add(stockKey(row));
    upsertStock(row);
  }
  for (const key of [...state.stock.keys()]) if (!seen.has(key)) removeStock(key);
  $('stock-empty').hidden = state.stock.size > 0;
  refreshSelectors();
}

/** Re-reads one row (its lots changed, or a change named a row we do not show yet). */
function scheduleRowFetch(sku, location) {
  debounce(`row:${sku}|${location}`, 150, () => attempt('stock row', async () => {
    const { today, stock } = await api(`/v1/dashboard/stock?sku=${encodeURIComponent(sku)}&location=${encodeURIComponent(location)}`);
    state.today = today;
    if (stock.length === 0) removeStock(`${sku}|${location}`);
    for (const row of stock) upsertStock(row, { flash: true });
    refreshSelectors();
  }));
}

// ---- orders and movements ----------------------------------------------------------------------

function renderOrder(entry) {
  const d = entry.data;
  const cells = entry.tr.cells;
  setText(cells[0], fmtDateTime(d.created_at));
  setText(cells[1], d.external_ref || d.id.slice(0, 8));
  setText(cells[2], d.status);
  cells[2].className = `status-${d.status}`;
  setText(cells[3], d.location);
  cells[1].title = d.id;
}

function upsertOrder(order) {
  let entry = state.orders.get(order.id);
  if (entry) {
    if (order.version !== undefined && order.version < entry.data.version) return;
    Object.assign(entry.data, order);
  } else {
    entry = { data: { ...order }, tr: el('tr', { 'data-id': order.id }, el('td'), el('td'), el('td'), el('td', { 'data-col': 'location' })) };
    state.orders.set(order.id, entry);
    const tbody = $('orders-table').tBodies[0];
    const before = [...tbody.rows].find((tr) => state.orders.get(tr.dataset.id).data.created_at < order.created_at);
    tbody.insertBefore(entry.tr, before || null);
    while (tbody.rows.length > ORDERS_SHOWN) {
      const last = tbody.rows[tbody.rows.length - 1];
      state.orders.delete(last.dataset.id);
      last.remove();
    }
  }
  renderOrder(entry);
}

async function loadOrders() {
  const { orders } = await api(`/v1/orders?limit=${ORDERS_SHOWN}`);
  for (const order of orders.slice().reverse()) upsertOrder(order);
}

async function loadMovements() {
  const { movements } = await api(`/v1/movements?limit=${MOVEMENTS_SHOWN}`);
  const tbody = $('movements-table').tBodies[0];
  const fresh = movements.filter((m) => !state.movementIds.has(m.id));
  for (const m of fresh.reverse()) {
    state.movementIds.add(m.id);
    tbody.insertBefore(el('tr', { 'data-id': m.id },
      el('td', { title: m.created_at }, fmtTime(m.created_at)), el('td', {}, m.sku), el('td', {}, m.location),
      el('td', { class: 'num' }, signed(m.delta_on_hand)), el('td', { class: 'num' }, signed(m.delta_reserved)),
      el('td', { title: m.note || '' }, m.cause ? `${m.reason} (${m.cause})` : m.reason)), tbody.firstChild);
  }
  while (tbody.rows.length > MOVEMENTS_SHOWN) {
    state.movementIds.delete(tbody.rows[tbody.rows.length - 1].dataset.id);
    tbody.rows[tbody.rows.length - 1].remove();
  }
}

// ---- sync health and reorder suggestions -------------------------------------------------------

async function loadSync() {
  const s = await api('/v1/sync/status');
  const facts = [['current WAL', s.current_lsn]];
  if (s.slot) {
    facts.push(['CDC slot', `${s.slot.name} (${s.slot.active ? 'active' : 'inactive'})`], ['slot lag', fmtBytes(s.slot.lag_bytes)], ['confirmed', s.slot.confirmed_flush_lsn || '—']);
  } else {
    facts.push(['CDC slot', 'none (the cdc reader has not created it)']);
  }
  $('slot-status').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k }, v)]));
  const tbody = $('projectors-table').tBodies[0];
  tbody.replaceChildren(...s.projectors.map((p) => el('tr', { 'data-projector': p.name },
    el('td', {}, p.name),
    el('td', { class: `num ${p.lag_ms > 10000 ? 'bad' : p.lag_ms > 2000 ? 'warn' : ''}` }, fmtLag(p.lag_ms)),
    el('td', { class: `num ${p.dead_letters > 0 ? 'bad' : ''}` }, p.dead_letters),
    el('td', {}, p.applied_lsn || '—'))));
  const note = $('projectors-note');
  note.hidden = s.projectors.length > 0;
  note.textContent = s.projectors_known ? 'No projector has reported yet.' : 'Projector positions unknown (NATS not readable from the API).';
}

/** The analytics endpoint is another module's: render whatever list it returns, and say so when it is absent. */
async function loadReorder() {
  const box = $('reorder');
  let body;
  try {
    body = await api('/v1/analytics/reorder-suggestions');
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    const text = err.status === 404 ? 'not available' : err.status === 403 ? 'not permitted for this token' : `unavailable (${err.status})`;
    box.replaceChildren(el('p', { class: 'empty', 'data-state': err.status === 404 ? 'not-available' : 'error' }, text));
    return;
  }
  const list = Array.isArray(body) ? body : Object.values(body || {}).find(Array.isArray) || [];
  if (list.length === 0) {
    box.replaceChildren(el('p', { class: 'empty', 'data-state': 'empty' }, 'No suggestions right now.'));
    return;
  }
  const scalar = (v) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
  const keys = [...new Set(list.slice(0, 20).flatMap((r) => Object.keys(r).filter((k) => scalar(r[k]))))];
  // the columns a buyer acts on first, when the endpoint has them; otherwise whatever it sends
  const preferred = PREFERRED_REORDER_COLS.filter((k) => keys.includes(k));
  const cols = (preferred.length >= 3 ? preferred : keys).slice(0, 7);
  box.replaceChildren(el('table', { class: 'grid', 'data-state': 'list' },
    el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', { class: typeof list[0][c] === 'number' ? 'num' : undefined }, c.replaceAll('_', ' '))))),
    el('tbody', {}, ...list.slice(0, 50).map((r) => el('tr', {}, ...cols.map((c) => el('td', { class: typeof r[c] === 'number' ? 'num' : undefined }, r[c] ?? '')))))));
}

// ---- chart: on hand over time, reconstructed backwards from today's on hand through the ledger ----

async function loadChart() {
  const sku = state.chartSku;
  const box = $('chart');
  if (!sku) return;
  const { movements } = await api(`/v1/movements?sku=${encodeURIComponent(sku)}&limit=${CHART_MOVEMENTS}`);
  if (sku !== state.chartSku) return;
  const current = new Map();
  let reorderPoint = null;
  for (const e of state.stock.values()) {
    if (e.data.sku !== sku) continue;
    current.set(e.data.location, e.data.on_hand);
    reorderPoint = e.data.reorder_point;
  }
  const lines = reconstructHistory(current, movements);
  const root = drawStockChart({ sku, lines, reorderPoint, now: Date.now(), formatTime: (t) => fmtDateTime(new Date(t).toISOString()) });
  box.replaceChildren(root);
  $('chart-legend').replaceChildren(...lines.flatMap((line, i) => [el('span', { class: `swatch series-${i}` }), `${line.location} (${line.steps.length} movements shown)`]));
}

// ---- live changes ------------------------------------------------------------------------------

function applyChange(change) {
  switch (change.table) {
    case 'stock_levels': {
      if (change.op === 'delete') removeStock(`${change.sku}|${change.location}`);
      else upsertStock({ sku: change.sku, location: change.location, on_hand: change.on_hand, reserved: change.reserved, version: change.version }, { flash: true, commitTime: change.commit_time });
      debounce('movements', 300, () => attempt('movements', loadMovements));
      if (change.sku === state.chartSku) debounce('chart', 1000, () => attempt('chart', loadChart));
      break;
    }
    case 'lots':
      scheduleRowFetch(change.sku, change.location);
      break;
    case 'products':
      for (const e of state.stock.values()) {
        if (e.data.sku !== change.sku) continue;
        e.data.name = change.name;
        e.data.reorder_point = change.reorder_point;
        renderStockRow(e, { flash: true });
      }
      debounce('selectors', 300, refreshSelectors);
      break;
    case 'orders':
      if (change.op !== 'delete') upsertOrder(change);
      break;
    default:
      break;
  }
}

function setLive(mode, detail) {
  state.live = mode;
  const status = $('live-status');
  status.dataset.state = mode;
  status.textContent = { live: 'live', polling: 'polling every 5 s', connecting: 'connecting…', reconnecting: 'reconnecting…', off: 'not connected' }[mode] || mode;
  status.title = detail || '';
  if (mode === 'live') stopPolling();
  else if (mode !== 'off') startPolling();
}

function startPolling() {
  if (state.pollTimer) return;
  state.pollTimer = setInterval(() => void refreshTables(), POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

function scheduleReconnect(ms) {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(() => void connectLive(), ms ?? state.reconnectDelay);
  state.reconnectDelay = Math.min(30000, state.reconnectDelay * 2);
}

/** One server-sent event: `ready` (subscribed: reload once) or `change`. */
function handleEvent({ event, data }) {
  if (event === 'ready') {
    state.reconnectDelay = 1000;
    setLive('live');
    // the feed starts at "now": one reload closes the gap between our first snapshot and the subscription
    void refreshTables();
  } else if (event === 'change' && data) {
    try {
      applyChange(JSON.parse(data));
    } catch (err) {
      console.warn('dashboard: bad change event', err);
    }
  }
}

async function connectLive() {
  if (!state.token) return;
  state.stream?.abort();
  const controller = new AbortController();
  state.stream = controller;
  setLive(state.live === 'live' ? 'reconnecting' : state.live === 'polling' ? 'polling' : 'connecting');
  let res;
  try {
    res = await fetch('/v1/dashboard/events', { headers: { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' }, cache: 'no-store', signal: controller.signal });
  } catch {
    if (!controller.signal.aborted) { setLive('reconnecting', 'network error'); scheduleReconnect(); }
    return;
  }
  if (res.status === 401) {
    signOut('The token was refused (expired or invalid): paste a new one.');
    return;
  }
  if (!res.ok || !res.body) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch { /* not JSON */ }
    setLive('polling', `live updates unavailable (${res.status}): ${message}`);
    scheduleReconnect(30000);
    return;
  }
  // the server sends a comment every 15 s: silence for much longer means a dead connection nobody closed
  let lastBytes = Date.now();
  let stale = false;
  const watchdog = setInterval(() => {
    if (Date.now() - lastBytes < STALE_MS) return;
    stale = true;
    controller.abort();
  }, 5000);
  try {
    await readEventStream(res.body, { onEvent: handleEvent, onBytes: () => { lastBytes = Date.now(); } });
  } catch {
    /* stream broken: reconnect below */
  } finally {
    clearInterval(watchdog);
  }
  if (controller.signal.aborted && !stale) return;
  setLive('reconnecting', 'the live stream ended');
  scheduleReconnect();
}

// ---- start and stop ----------------------------------------------------------------------------

async function refreshTables() {
  await Promise.all([attempt('stock', loadStock), attempt('orders', loadOrders), attempt('movements', loadMovements)]);
}

async function open() {
  $('token-form').hidden = true;
  $('panels').hidden = false;
  $('sign-out').hidden = false;
  await refreshTables();
  if (!state.token) return;
  void attempt('sync', loadSync);
  void attempt('reorder', loadReorder);
  state.syncTimer = setInterval(() => void attempt('sync', loadSync), SYNC_MS);
  state.reorderTimer = setInterval(() => void attempt('reorder', loadReorder), REORDER_MS);
  void connectLive();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.stream?.abort();
  for (const timer of [state.syncTimer, state.reorderTimer]) clearInterval(timer);
  clearTimeout(state.reconnectTimer);
  stopPolling();
  setLive('off');
  $('panels').hidden = true;
  $('sign-out').hidden = true;
  $('token-form').hidden = false;
  $('token-message').textContent = message || '';
}

function init() {
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('token-message').textContent = '';
    state.token = token;
    void open();
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  $('location-filter').addEventListener('change', () => { for (const e of state.stock.values()) renderStockRow(e); });
  $('chart-sku').addEventListener('change', () => {
    state.chartSku = $('chart-sku').value;
    void attempt('chart', loadChart);
  });
  state.token = takeToken();
  if (state.token) void open();
  else signOut('');
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
