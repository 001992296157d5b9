/**
 * Analytics over a fixed, hand-written ledger: movements are inserted with explicit timestamps (the ledger
 * trigger keeps stock_levels and lots in step) and the clock stays at 2026-12-03T12:00:00Z, so every figure
 * below is worked out by hand in the comments.
 *
 * The ledger (UTC; "sale q" = a reservation of q then its confirm, the confirm's delta_on_hand is −q):
 *   AN-SHEET-A (sheets, reorder point 15) @MAIN
 *     10-20 10:00 receipt +100 · 11-03 09:00 sale 10 · 11-06 15:00 receipt +20 · 11-10 23:59:59 sale 5 ·
 *     11-11 00:00:00 sale 7 · 11-20 10:00 adjustment −52 · 11-23 12:00:00 sale 4 · 11-25 10:00 sale 12 ·
 *     12-01 08:00 sale 18                                                                  → on hand 12
 *   AN-SHEET-A @SHOP
 *     10-25 10:00 receipt +50 · 11-05 09:00 sale 20 · 11-30 10:00 sale 10                  → on hand 20
 *   AN-SHEET-B (sheets, reorder point 50) @MAIN: 10-01 receipt +40, never sold; an open order reserves 5
 *   AN-SHEET-Z (sheets) @MAIN: a stock row and no movement at all                            → on hand 0
 *   AN-LINEN-C (linens, reorder point 10, reorder qty 50) @MAIN
 *     11-02 08:00 receipt +30 · 11-04 12:00 sale 6 · 11-28 10:00 sale 9                     → on hand 15
 *   AN-LINEN-D (linens, reorder point 20) @SHOP: 10-01 receipt +500 · 11-29 10:00 sale 10   → on hand 490
 *   AN-BEAUTY-L (beauty, lot-tracked) @MAIN
 *     10-15 receipt +10 into lot L1 (expires 2026-12-01: expired today) ·
 *     11-01 00:00:00 receipt +20 into lot L2 (expires 2027-06-30) · 11-26 10:00 sale 8 from L2
 *                                                                  → on hand 22, sellable 12 (L2 only)
 *   AN-BUNDLE (a bundle of A): never stocked, must appear nowhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

const A = 'AN-SHEET-A';
const B = 'AN-SHEET-B';
const Z = 'AN-SHEET-Z';
const C = 'AN-LINEN-C';
const D = 'AN-LINEN-D';
const L = 'AN-BEAUTY-L';
const BUNDLE = 'AN-BUNDLE';

async function stockRow(sku: string, location: string) {
  await h.pool.query('INSERT INTO stock_levels (sku, location) VALUES ($1, $2) ON CONFLICT DO NOTHING', [sku, location]);
}

async function lot(sku: string, location: string, lotCode: string, expiresOn: string): Promise<string> {
  await stockRow(sku, location);
  const { rows } = await h.pool.query('INSERT INTO lots (sku, location, lot_code, expires_on) VALUES ($1, $2, $3, $4) RETURNING id', [sku, location, lotCode, expiresOn]);
  return rows[0].id;
}

async function move(sku: string, location: string, at: string, deltaOnHand: number, deltaReserved: number, reason: string, lotId: string | null = null) {
  await stockRow(sku, location);
  await h.pool.query(
    `INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, cause, actor, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'analytics-test', $8)`,
    [sku, location, lotId, deltaOnHand, deltaReserved, reason, reason === 'adjustment' ? 'damaged' : null, at],
  );
}

const receive = (sku: string, location: string, at: string, qty: number, lotId: string | null = null) => move(sku, location, at, qty, 0, 'receipt', lotId);

async function sell(sku: string, location: string, at: string, qty: number, lotId: string | null = null) {
  await move(sku, location, at, 0, qty, 'reservation', lotId);
  await move(sku, location, at, -qty, -qty, 'confirm', lotId);
}

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
  const product = (sku: string, category: string, extra: Record<string, unknown> = {}) =>
    h.ok(201, 'POST', '/v1/products', { body: { sku, name: `Product ${sku}`, category, ...extra } });
  await product(A, 'sheets', { reorder_point: 15 });
  await product(B, 'sheets', { reorder_point: 50 });
  await product(Z, 'sheets');
  await product(C, 'linens', { reorder_point: 10, reorder_qty: 50 });
  await product(D, 'linens', { reorder_point: 20 });
  await product(L, 'beauty', { lot_tracked: true });
  await product(BUNDLE, 'bundle', { components: [{ sku: A, qty: 1 }] });

  await receive(A, 'MAIN', '2026-10-20T10:00:00Z', 100);
  await sell(A, 'MAIN', '2026-11-03T09:00:00Z', 10);
  await receive(A, 'MAIN', '2026-11-06T15:00:00Z', 20);
  await sell(A, 'MAIN', '2026-11-10T23:59:59Z', 5);
  await sell(A, 'MAIN', '2026-11-11T00:00:00Z', 7);
  await move(A, 'MAIN', '2026-11-20T10:00:00Z', -52, 0, 'adjustment');
  await sell(A, 'MAIN', '2026-11-23T12:00:00Z', 4);
  await sell(A, 'MAIN', '2026-11-25T10:00:00Z', 12);
  await sell(A, 'MAIN', '2026-12-01T08:00:00Z', 18);

  await receive(A, 'SHOP', '2026-10-25T10:00:00Z', 50);
  await sell(A, 'SHOP', '2026-11-05T09:00:00Z', 20);
  await sell(A, 'SHOP', '2026-11-30T10:00:00Z', 10);

  await receive(B, 'MAIN', '2026-10-01T10:00:00Z', 40);
  await stockRow(Z, 'MAIN');

  await receive(C, 'MAIN', '2026-11-02T08:00:00Z', 30);
  await sell(C, 'MAIN', '2026-11-04T12:00:00Z', 6);
  await sell(C, 'MAIN', '2026-11-28T10:00:00Z', 9);

  await receive(D, 'SHOP', '2026-10-01T10:00:00Z', 500);
  await sell(D, 'SHOP', '2026-11-29T10:00:00Z', 10);

  const l1 = await lot(L, 'MAIN', 'L1', '2026-12-01');
  const l2 = await lot(L, 'MAIN', 'L2', '2027-06-30');
  await receive(L, 'MAIN', '2026-10-15T10:00:00Z', 10, l1);
  await receive(L, 'MAIN', '2026-11-01T00:00:00Z', 20, l2);
  await sell(L, 'MAIN', '2026-11-26T10:00:00Z', 8, l2);

  // a real open order holds 5 of B (its reservation moves only reserved, so no figure but `reserved` sees it)
  await h.fixtures.order([{ sku: B, qty: 5 }], { location: 'MAIN' });
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

function byKey<T extends Record<string, unknown>>(rows: T[], key: (r: T) => string = (r) => `${r.sku}@${r.location}`): Record<string, T> {
  return Object.fromEntries(rows.map((r) => [key(r), r]));
}

it('runs on the fixed clock 2026-12-03T12:00:00Z with the ledger above', async () => {
  expect(h.clock.now().toISOString()).toBe('2026-12-03T12:00:00.000Z');
  const { rows } = await h.pool.query('SELECT sku, location, on_hand, reserved FROM stock_levels ORDER BY sku, location');
  expect(byKey(rows)).toEqual(byKey([
    { sku: L, location: 'MAIN', on_hand: 22, reserved: 0 },
    { sku: C, location: 'MAIN', on_hand: 15, reserved: 0 },
    { sku: D, location: 'SHOP', on_hand: 490, reserved: 0 },
    { sku: A, location: 'MAIN', on_hand: 12, reserved: 0 },
    { sku: A, location: 'SHOP', on_hand: 20, reserved: 0 },
    { sku: B, location: 'MAIN', on_hand: 40, reserved: 5 },
    { sku: Z, location: 'MAIN', on_hand: 0, reserved: 0 },
  ]));
});

describe('GET /v1/analytics/turnover', () => {
  const period = 'from=2026-11-01&to=2026-11-10'; // N = 10 days, [11-01 00:00Z, 11-11 00:00Z)

  it('gives units sold, average daily closing on hand and turnover per sku, across locations', async () => {
    const res = await h.ok(200, 'GET', `/v1/analytics/turnover?${period}`);
    expect(res).toMatchObject({ from: '2026-11-01', to: '2026-11-10', days: 10, location: null, group: 'sku' });
    const rows = byKey(res.rows, (r: any) => r.key);
    // no bundle, no category row: every key is a stocked sku
    expect(Object.keys(rows).sort()).toEqual([A, B, Z, C, D, L].sort());

    // A@MAIN closings Nov 1..10: 100, 100, 90 (sold 10 on the 3rd), 90, 90, 110 (+20 on the 6th), 110, 110, 110,
    //   105 (sold 5 at 23:59:59 on the 10th) = 1015 → 101.5; the 7 sold at 11-11 00:00:00 is outside the period.
    // A@SHOP closings: 50 × 4 (Nov 1..4), 30 × 6 (sold 20 on the 5th) = 380 → 38.
    // A: sold 10 + 5 + 20 = 35, average 101.5 + 38 = 139.5, turnover 35 / 139.5
    expect(rows[A]).toMatchObject({ category: 'sheets', units_sold: 35 });
    expect(rows[A]!.average_on_hand).toBeCloseTo(139.5, 9);
    expect(rows[A]!.turnover).toBeCloseTo(35 / 139.5, 9);
    // B: 40 every day, never sold → turnover 0 (not null: there was stock)
    expect(rows[B]).toMatchObject({ units_sold: 0, average_on_hand: 40, turnover: 0 });
    // Z: nothing ever on hand → average 0 → turnover null
    expect(rows[Z]).toMatchObject({ units_sold: 0, average_on_hand: 0, turnover: null });
    // C: closings 0 (Nov 1), 30, 30, then 24 × 7 (sold 6 on the 4th) = 228 → 22.8; turnover 6 / 22.8
    expect(rows[C]!.units_sold).toBe(6);
    expect(rows[C]!.average_on_hand).toBeCloseTo(22.8, 9);
    expect(rows[C]!.turnover).toBeCloseTo(6 / 22.8, 9);
    // D: 500 all period (its sale is on 11-29) → 0 / 500
    expect(rows[D]).toMatchObject({ units_sold: 0, average_on_hand: 500, turnover: 0 });
    // L: 10 (L1) + 20 received at 11-01 00:00:00, inside the first day → 30 every day
    expect(rows[L]).toMatchObject({ category: 'beauty', units_sold: 0, average_on_hand: 30, turnover: 0 });
  });

  it('counts a sale at 23:59:59Z on the last day and not one at 00:00:00Z the next day', async () => {
    const last = byKey((await h.ok(200, 'GET', `/v1/analytics/turnover?from=2026-11-10&to=2026-11-10&location=MAIN`)).rows, (r: any) => r.key);
    // Nov 10 alone at MAIN: the 5 sold at 23:59:59 counts; closing on hand 105
    expect(last[A]).toMatchObject({ units_sold: 5, average_on_hand: 105 });
    expect(last[A]!.turnover).toBeCloseTo(5 / 105, 9);
    const next = byKey((await h.ok(200, 'GET', `/v1/analytics/turnover?from=2026-11-11&to=2026-11-11&location=MAIN`)).rows, (r: any) => r.key);
    // Nov 11 alone: only the 7 sold at 00:00:00; closing 105 − 7 = 98
    expect(next[A]).toMatchObject({ units_sold: 7, average_on_hand: 98 });
  });

  it('limits the figures to one location', async () => {
    const res = await h.ok(200, 'GET', `/v1/analytics/turnover?${period}&location=SHOP`);
    expect(res.location).toBe('SHOP');
    const rows = byKey(res.rows, (r: any) => r.key);
    // only the skus stocked at SHOP
    expect(Object.keys(rows).sort()).toEqual([A, D].sort());
    expect(rows[A]).toMatchObject({ units_sold: 20, average_on_hand: 38 });
    expect(rows[A]!.turnover).toBeCloseTo(20 / 38, 9);
    const main = byKey((await h.ok(200, 'GET', `/v1/analytics/turnover?${period}&location=MAIN`)).rows, (r: any) => r.key);
    expect(main[A]).toMatchObject({ units_sold: 15, average_on_hand: 101.5 });
    expect(main[D]).toBeUndefined();
  });

  it('groups by category: the sums over its skus, and no bundle category', async () => {
    const res = await h.ok(200, 'GET', `/v1/analytics/turnover?${period}&group=category`);
    expect(res.group).toBe('category');
    const rows = byKey(res.rows, (r: any) => r.key);
    expect(Object.keys(rows).sort()).toEqual(['beauty', 'linens', 'sheets']);
    // sheets: A (35, 139.5) + B (0, 40) + Z (0, 0) → 35 / 179.5
    expect(rows.sheets).toMatchObject({ category: 'sheets', units_sold: 35, average_on_hand: 179.5 });
    expect(rows.sheets!.turnover).toBeCloseTo(35 / 179.5, 9);
    // linens: C (6, 22.8) + D (0, 500) → 6 / 522.8
    expect(rows.linens!.units_sold).toBe(6);
    expect(rows.linens!.average_on_hand).toBeCloseTo(522.8, 9);
    expect(rows.linens!.turnover).toBeCloseTo(6 / 522.8, 9);
    expect(rows.beauty).toMatchObject({ units_sold: 0, average_on_hand: 30, turnover: 0 });
    // at MAIN only: sheets = A@MAIN (15, 101.5) + B (0, 40) + Z → 15 / 141.5; linens = C alone
    const main = byKey((await h.ok(200, 'GET', `/v1/analytics/turnover?${period}&group=category&location=MAIN`)).rows, (r: any) => r.key);
    expect(main.sheets).toMatchObject({ units_sold: 15, average_on_hand: 141.5 });
    expect(main.linens!.average_on_hand).toBeCloseTo(22.8, 9);
  });

  it('refuses a period that ends before it starts, bad dates and unknown groups (400)', async () => {
    for (const query of ['from=2026-11-10&to=2026-11-01', 'from=2026-11-01', 'to=2026-11-01', 'from=2026-13-01&to=2026-13-02',
      'from=2020-01-01&to=2026-01-01', `${period}&group=location`, `${period}&location=main`]) {
      const res = await h.call('GET', `/v1/analytics/turnover?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code, query).toBe('validation_failed');
    }
    const reversed = await h.call('GET', '/v1/analytics/turnover?from=2026-11-10&to=2026-11-01');
    expect(reversed.body.error.details.issues).toContainEqual({ path: 'from', message: 'from must not be after to' });
  });
});

describe('GET /v1/analytics/consumption', () => {
  it('averages confirmed units per (sku, location) over the last days, as of the request clock', async () => {
    // window (11-23 12:00Z, 12-03 12:00Z]
    const res = await h.ok(200, 'GET', '/v1/analytics/consumption?days=10');
    expect(res).toMatchObject({ as_of: '2026-12-03T12:00:00.000Z', days: 10, location: null });
    const rows = byKey(res.rows);
    expect(Object.keys(rows).sort()).toEqual([`${A}@MAIN`, `${A}@SHOP`, `${B}@MAIN`, `${Z}@MAIN`, `${C}@MAIN`, `${D}@SHOP`, `${L}@MAIN`].sort());
    // A@MAIN: 12 + 18 = 30 → 3/day; the 4 sold at exactly 11-23 12:00:00Z is the window's excluded start
    expect(rows[`${A}@MAIN`]).toMatchObject({ units_sold: 30, daily_consumption: 3 });
    expect(rows[`${A}@SHOP`]).toMatchObject({ units_sold: 10, daily_consumption: 1 });
    expect(rows[`${C}@MAIN`]!.daily_consumption).toBeCloseTo(0.9, 9);
    expect(rows[`${D}@SHOP`]).toMatchObject({ units_sold: 10, daily_consumption: 1 });
    expect(rows[`${L}@MAIN`]!.daily_consumption).toBeCloseTo(0.8, 9);
    // no sales (B's open reservation is not consumption)
    expect(rows[`${B}@MAIN`]).toMatchObject({ units_sold: 0, daily_consumption: 0 });
    expect(rows[`${Z}@MAIN`]).toMatchObject({ units_sold: 0, daily_consumption: 0 });
  });

  it('defaults to 28 days and follows the clock', async () => {
    // window (11-05 12:00Z, 12-03 12:00Z]: A@MAIN 5 + 7 + 4 + 12 + 18 = 46; A@SHOP only the 10 (the 20 was 11-05 09:00)
    const rows = byKey((await h.ok(200, 'GET', '/v1/analytics/consumption')).rows);
    expect(rows[`${A}@MAIN`]!.units_sold).toBe(46);
    expect(rows[`${A}@MAIN`]!.daily_consumption).toBeCloseTo(46 / 28, 9);
    expect(rows[`${A}@SHOP`]!.units_sold).toBe(10);
    // a clock 10 days earlier (11-23 12:00Z), 10-day window (11-13 12:00Z, 11-23 12:00Z]: only the 4 at 11-23 12:00:00Z
    h.clock.advance(-10 * 86_400_000);
    try {
      const earlier = byKey((await h.ok(200, 'GET', `/v1/analytics/consumption?days=10&location=MAIN`)).rows);
      expect(earlier[`${A}@MAIN`]).toMatchObject({ units_sold: 4 });
      expect(earlier[`${A}@MAIN`]!.daily_consumption).toBeCloseTo(0.4, 9);
    } finally {
      h.clock.advance(10 * 86_400_000);
    }
  });

  it('limits to one location', async () => {
    const res = await h.ok(200, 'GET', '/v1/analytics/consumption?days=10&location=SHOP');
    expect(res.location).toBe('SHOP');
    expect(Object.keys(byKey(res.rows)).sort()).toEqual([`${A}@SHOP`, `${D}@SHOP`].sort());
  });

  it('refuses days out of 1..365 (400)', async () => {
    for (const days of ['0', '366', '-1', '2.5', 'abc']) {
      const res = await h.call('GET', `/v1/analytics/consumption?days=${days}`);
      expect(res.status, days).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
  });
});

describe('GET /v1/analytics/cover', () => {
  it('divides sellable stock by the daily consumption, leaving expired lots out', async () => {
    const res = await h.ok(200, 'GET', '/v1/analytics/cover?days=10');
    expect(res).toMatchObject({ as_of: '2026-12-03T12:00:00.000Z', days: 10, location: null });
    const rows = byKey(res.rows);
    // A@MAIN: sold 30 over 10 days → 3/day; sellable 12 → 4 days
    expect(rows[`${A}@MAIN`]).toMatchObject({ on_hand: 12, reserved: 0, sellable: 12, daily_consumption: 3, days_of_cover: 4 });
    // A@SHOP: 20 / 1 = 20 days
    expect(rows[`${A}@SHOP`]).toMatchObject({ sellable: 20, days_of_cover: 20 });
    // L: on hand 22 but lot L1 (10) expired on 12-01 → sellable 12; 12 / 0.8 = 15 days (not 22 / 0.8 = 27.5)
    expect(rows[`${L}@MAIN`]).toMatchObject({ on_hand: 22, sellable: 12 });
    expect(rows[`${L}@MAIN`]!.days_of_cover).toBeCloseTo(15, 9);
    // C: 15 / 0.9 = 16.67 days
    expect(rows[`${C}@MAIN`]!.days_of_cover).toBeCloseTo(15 / 0.9, 9);
    // B: 40 on hand, 5 reserved → sellable 35, no demand → null (infinite cover)
    expect(rows[`${B}@MAIN`]).toMatchObject({ on_hand: 40, reserved: 5, sellable: 35, daily_consumption: 0, days_of_cover: null });
    expect(rows[`${Z}@MAIN`]).toMatchObject({ sellable: 0, days_of_cover: null });
    // shortest cover first (A@MAIN 4, L 15, C 16.7, A@SHOP 20, D 490), rows without demand last
    expect(res.rows.map((r: any) => `${r.sku}@${r.location}`).slice(0, 5)).toEqual([`${A}@MAIN`, `${L}@MAIN`, `${C}@MAIN`, `${A}@SHOP`, `${D}@SHOP`]);
    expect(res.rows.slice(5).map((r: any) => r.days_of_cover)).toEqual([null, null]);
  });

  it('defaults to a 28-day window and filters by location', async () => {
    // A@MAIN: 46 sold in 28 days → 12 / (46/28) = 12 × 28 / 46 days
    const rows = byKey((await h.ok(200, 'GET', '/v1/analytics/cover')).rows);
    expect(rows[`${A}@MAIN`]!.days_of_cover).toBeCloseTo((12 * 28) / 46, 9);
    const shop = await h.ok(200, 'GET', '/v1/analytics/cover?days=10&location=SHOP');
    // D@SHOP: 490 / 1 = 490 days
    expect(shop.rows).toMatchObject([{ sku: A, location: 'SHOP', days_of_cover: 20 }, { sku: D, location: 'SHOP', days_of_cover: 490 }]);
  });

  it('refuses days out of range (400)', async () => {
    expect((await h.call('GET', '/v1/analytics/cover?days=0')).status).toBe(400);
    expect((await h.call('GET', '/v1/analytics/cover?days=1000')).status).toBe(400);
  });
});

describe('GET /v1/analytics/reorder-suggestions', () => {
  it('dates the crossing of the reorder point and sizes the order, most urgent first', async () => {
    // days=10, lead time 7 + target 30 = 37 days of horizon; as of 2026-12-03T12:00Z
    const res = await h.ok(200, 'GET', '/v1/analytics/reorder-suggestions?days=10');
    expect(res).toMatchObject({ as_of: '2026-12-03T12:00:00.000Z', days: 10, lead_time_days: 7, target_days: 30, location: null });
    expect(res.rows.map((r: any) => `${r.sku}@${r.location}`)).toEqual([`${A}@MAIN`, `${A}@SHOP`, `${C}@MAIN`, `${L}@MAIN`]);
    const [aMain, aShop, c, l] = res.rows;
    // A@MAIN: 3/day, sellable 12, reorder point 15 → already below → today; suggest 3 × (7 + 30) − 12 = 99
    expect(aMain).toMatchObject({
      sellable: 12, reorder_point: 15, reorder_qty: 0, daily_consumption: 3, days_of_cover: 4, below_reorder_point: true,
      days_until_reorder_point: 0, reorder_on: '2026-12-03', suggested_qty: 99,
    });
    // A@SHOP: 1/day, (20 − 15) / 1 = 5 days → 12-08 12:00Z; suggest 1 × 37 − 20 = 17
    expect(aShop).toMatchObject({ sellable: 20, below_reorder_point: false, days_until_reorder_point: 5, reorder_on: '2026-12-08', suggested_qty: 17 });
    // C: 0.9/day, (15 − 10) / 0.9 = 5.56 days → 12-09 01:20Z; ⌈0.9 × 37 − 15⌉ = ⌈18.3⌉ = 19, but at least reorder_qty 50
    expect(c).toMatchObject({ sellable: 15, reorder_point: 10, reorder_qty: 50, reorder_on: '2026-12-09', suggested_qty: 50 });
    expect(c.days_until_reorder_point).toBeCloseTo(5 / 0.9, 9);
    // L: 0.8/day, sellable 12 (expired lot left out), reorder point 0 → 12 / 0.8 = 15 days → 12-18; ⌈0.8 × 37 − 12⌉ = ⌈17.6⌉ = 18
    expect(l).toMatchObject({ sellable: 12, reorder_point: 0, days_until_reorder_point: 15, reorder_on: '2026-12-18', suggested_qty: 18 });
    // left out: B is below its reorder point (35 < 50) but has no demand; Z has no demand;
    // D crosses in (490 − 20) / 1 = 470 days, beyond the 37-day horizon; the bundle is never listed
  });

  it('widens the horizon with lead time and target, and filters by location', async () => {
    // D@SHOP: 470 days ≤ 200 + 300 → listed; 2026-12-03 + 470 days = 2028-03-17; suggest 1 × 500 − 490 = 10
    const res = await h.ok(200, 'GET', '/v1/analytics/reorder-suggestions?days=10&lead_time_days=200&target_days=300&location=SHOP');
    expect(res.rows.map((r: any) => r.sku)).toEqual([A, D]);
    expect(res.rows[1]).toMatchObject({ sku: D, location: 'SHOP', days_until_reorder_point: 470, reorder_on: '2028-03-17', suggested_qty: 10 });
    // A@SHOP with that horizon: ⌈1 × 500 − 20⌉ = 480
    expect(res.rows[0]).toMatchObject({ sku: A, suggested_qty: 480 });
    const main = await h.ok(200, 'GET', '/v1/analytics/reorder-suggestions?days=10&location=MAIN');
    expect(main.rows.map((r: any) => r.sku)).toEqual([A, C, L]);
  });

  it('refuses out-of-range parameters (400)', async () => {
    for (const query of ['days=0', 'days=400', 'lead_time_days=-1', 'lead_time_days=366', 'target_days=0', 'target_days=x']) {
      const res = await h.call('GET', `/v1/analytics/reorder-suggestions?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
  });
});

describe('who may read analytics', () => {
  const paths = [
    '/v1/analytics/turnover?from=2026-11-01&to=2026-11-10',
    '/v1/analytics/consumption',
    '/v1/analytics/cover',
    '/v1/analytics/reorder-suggestions',
  ];

  it('answers 403 forbidden to order-system and sheet-sync', async () => {
    for (const path of paths) {
      for (const role of ['order-system', 'sheet-sync'] as const) {
        const res = await h.call('GET', path, { role });
        expect(res.status, `${path} as ${role}`).toBe(403);
        expect(res.body.error).toMatchObject({ code: 'forbidden', details: { action: 'analytics:read', roles: [role] } });
      }
    }
  });

  it('answers admin, manager, clerk and viewer', async () => {
    for (const path of paths) {
      for (const role of ['admin', 'manager', 'clerk', 'viewer'] as const) {
        expect((await h.call('GET', path, { role })).status, `${path} as ${role}`).toBe(200);
      }
    }
  });
});
