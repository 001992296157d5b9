/*
 * The dashboard's stock chart: on hand over time per location for one SKU, as an inline SVG step chart
 * drawn here (no chart library). History is reconstructed backwards: start from today's on hand and undo
 * each ledger movement, newest first (GET /v1/movements?sku= returns them in that order).
 */
const SVG_NS = 'http://www.w3.org/2000/svg';
const MAX_SERIES = 6;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Per location: the value before the oldest movement shown, then each movement's time and the value after it.
 * `current` maps location → on hand now; `movements` are newest first.
 */
export function reconstructHistory(current, movements) {
  const walk = new Map([...current.entries()].map(([location, onHand]) => [location, { value: onHand, steps: [] }]));
  for (const m of movements) {
    if (!walk.has(m.location)) walk.set(m.location, { value: 0, steps: [] });
    const s = walk.get(m.location);
    s.steps.push({ t: Date.parse(m.created_at), after: s.value });
    s.value -= m.delta_on_hand;
  }
  return [...walk.entries()].sort((a, b) => a[0].localeCompare(b[0])).slice(0, MAX_SERIES)
    .map(([location, s]) => ({ location, start: s.value, steps: s.steps.reverse() }));
}

/** Builds the chart's <svg> (and the legend entries) for `lines` from reconstructHistory. */
export function drawStockChart({ sku, lines, reorderPoint, now, formatTime }) {
  const times = lines.flatMap((l) => l.steps.map((st) => st.t));
  const t0 = times.length ? Math.min(...times) : now - 3600000;
  const t1 = Math.max(now, t0 + 60000);
  const values = lines.flatMap((l) => [l.start, ...l.steps.map((st) => st.after)]).concat(reorderPoint ?? 0, 0);
  const vMax = Math.max(1, ...values);
  const vMin = Math.min(0, ...values);
  const W = 720, H = 220, L = 48, R = 12, T = 10, B = 26;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - vMin) / (vMax - vMin)) * (H - T - B);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `on hand of ${sku} over time`, 'data-sku': sku });
  for (const v of [vMin, (vMin + vMax) / 2, vMax]) {
    root.append(svg('line', { class: 'gridline', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    root.append(svg('text', { class: 'label', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(Math.round(v))));
  }
  root.append(svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }), svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  root.append(svg('text', { class: 'label', x: L, y: H - 8 }, formatTime(t0)));
  root.append(svg('text', { class: 'label', x: W - R, y: H - 8, 'text-anchor': 'end' }, 'now'));
  if (reorderPoint !== null && reorderPoint !== undefined) {
    root.append(svg('line', { class: 'reorder', x1: L, x2: W - R, y1: y(reorderPoint), y2: y(reorderPoint) }));
    const labelY = y(reorderPoint) < T + 14 ? y(reorderPoint) + 13 : y(reorderPoint) - 4;
    root.append(svg('text', { class: 'label', x: W - R, y: labelY, 'text-anchor': 'end' }, `reorder point ${reorderPoint}`));
  }
  lines.forEach((line, i) => {
    let d = `M ${x(t0).toFixed(1)} ${y(line.start).toFixed(1)}`;
    for (const st of line.steps) d += ` H ${x(st.t).toFixed(1)} V ${y(st.after).toFixed(1)}`;
    d += ` H ${x(t1).toFixed(1)}`;
    root.append(svg('path', { class: `series series-${i}`, d, 'data-location': line.location }));
  });
  return root;
}
