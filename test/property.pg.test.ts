/**
 * Property: any sequence of orders, settlements, expiry sweeps, adjustments, transfers and receipts, run
 * through the real API, keeps the ledger invariants after every command and never answers 5xx. A small
 * model of the stock (levels, lots, orders) predicts each command's answer — success, or the exact
 * refusal — and the final balances, lots, sellable quantities and order states are compared with the API.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expireDueOrders } from '../api/maintenance.ts';
import { createHarness, type CallResult, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

const TTL_SECONDS = 600;
const DAY = 86_400_000;
const LOCATIONS = ['MAIN', 'SHOP'] as const;
type Loc = (typeof LOCATIONS)[number];

const LOT_SKU = 'CREAM';
const BUNDLE_SKU = 'BUNDLE';
const BUNDLE_COMPONENTS = [{ sku: 'SHEET', qty: 1 }, { sku: 'CREAM', qty: 2 }];
const STOCKED = ['SHEET', 'PILLOW', LOT_SKU] as const;
const ORDERABLE = [...STOCKED, BUNDLE_SKU] as const;
/** lot codes of CREAM and how many days after the run's start they expire */
const LOT_DAYS = { 'L-SOON': 1, 'L-MID': 3, 'L-LATE': 60 } as const;
type LotCode = keyof typeof LOT_DAYS;
const LOT_CODES = Object.keys(LOT_DAYS) as LotCode[];
const REASONS = ['damaged', 'lost', 'found', 'theft', 'correction', 'count', 'expired', 'returned', 'sample', 'other'] as const;

/** `flip` sends a lot code for a product that is not lot-tracked, or omits it for one that is. */
interface LotChoice {
  code: LotCode;
  flip: boolean;
}

type Cmd =
  | { kind: 'createOrder'; location: Loc; lines: { sku: string; qty: number }[]; ttl: number | null }
  | { kind: 'confirm' | 'cancel' | 'paymentFailed'; pick: number }
  | { kind: 'expire'; advance: number | 'nextDue'; sweep: boolean }
  | { kind: 'adjust'; sku: string; location: Loc; lot: LotChoice; change: { delta: number } | { counted: number }; reason: string }
  | { kind: 'transfer'; sku: string; from: Loc; qty: number; lot: LotChoice }
  | { kind: 'receipt'; sku: string; location: Loc; qty: number; lot: LotChoice; wrongExpiry: boolean };

/** mostly a stocked product, sometimes the bundle (which holds no stock and must be refused) */
const skuArb = (pool: readonly string[]) =>
  fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...pool) }, { weight: 1, arbitrary: fc.constant(BUNDLE_SKU) });
const locArb = fc.constantFrom<Loc>(...LOCATIONS);
const lotArb: fc.Arbitrary<LotChoice> = fc.record({
  code: fc.constantFrom(...LOT_CODES),
  flip: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('createOrder' as const),
      location: fc.constantFrom<Loc>('MAIN', 'MAIN', 'MAIN', 'SHOP'),
      lines: fc.array(fc.record({ sku: fc.constantFrom(...ORDERABLE), qty: fc.integer({ min: 1, max: 5 }) }), { minLength: 1, maxLength: 3 }),
      // some TTLs land exactly on a clock step (30 s, 600 s) to probe the expiry boundary
      ttl: fc.option(fc.oneof(fc.constantFrom(5, 30, 599, 600), fc.integer({ min: 5, max: 1200 })), { freq: 3 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('confirm' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('paymentFailed' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('expire' as const),
      // 'nextDue' moves the clock to exactly the earliest open reservation's expires_at (the boundary)
      advance: fc.oneof(fc.constantFrom(0, 30_000, (TTL_SECONDS + 1) * 1000, DAY / 2, DAY), fc.constant('nextDue' as const)),
      // without the sweep, overdue orders stay reserved until a later sweep (confirm must refuse them)
      sweep: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      sku: skuArb(STOCKED),
      location: locArb,
      lot: lotArb,
      change: fc.oneof(
        fc.record({ delta: fc.integer({ min: -6, max: 6 }).filter((d) => d !== 0) }),
        fc.record({ counted: fc.integer({ min: 0, max: 12 }) }),
      ),
      reason: fc.constantFrom(...REASONS),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('transfer' as const),
      sku: skuArb(STOCKED),
      from: locArb,
      qty: fc.integer({ min: 1, max: 5 }),
      lot: lotArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('receipt' as const),
      sku: skuArb(STOCKED),
      location: locArb,
      qty: fc.integer({ min: 1, max: 10 }),
      lot: lotArb,
      wrongExpiry: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
);

// ---------------------------------------------------------------------------------------------------
// the model

interface Level {
  onHand: number;
  reserved: number;
}

interface Lot {
  id: string;
  sku: string;
  location: Loc;
  code: string;
  expiresOn: string;
  onHand: number;
  reserved: number;
}

type Status = 'reserved' | 'confirmed' | 'cancelled' | 'payment_failed' | 'expired';

interface Hold {
  sku: string;
  lotId: string | null;
  qty: number;
}

interface ModelOrder {
  id: string;
  status: Status;
  location: Loc;
  expiresAt: number;
  holds: Hold[];
}

const key = (sku: string, location: string) => `${sku}@${location}`;
const lotKey = (sku: string, location: string, code: string) => `${sku}@${location}#${code}`;
const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const compareLotIds = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

class Model {
  readonly levels = new Map<string, Level & { sku: string; location: Loc }>();
  readonly lots = new Map<string, Lot>();
  readonly orders: ModelOrder[] = [];

  constructor(readonly start: Date) {}

  level(sku: string, location: string): Level {
    return this.levels.get(key(sku, location)) ?? { onHand: 0, reserved: 0 };
  }

  ensureLevel(sku: string, location: Loc) {
    if (!this.levels.has(key(sku, location))) this.levels.set(key(sku, location), { sku, location, onHand: 0, reserved: 0 });
    return this.levels.get(key(sku, location))!;
  }

  lotById(id: string): Lot {
    const lot = [...this.lots.values()].find((l) => l.id === id);
    if (!lot) throw new Error(`model has no lot ${id}`);
    return lot;
  }

  expiryOf(code: LotCode, wrong = false): string {
    return dayString(new Date(this.start.getTime() + (LOT_DAYS[code] + (wrong ? 1 : 0)) * DAY));
  }

  /** lots an order may pick from at `location` today, first expiry first */
  sellableLots(sku: string, location: string, today: string): Lot[] {
    return [...this.lots.values()]
      .filter((l) => l.sku === sku && l.location === location && l.expiresOn > today && l.onHand > l.reserved)
      .sort((a, b) => (a.expiresOn === b.expiresOn ? compareLotIds(a.id, b.id) : byCodeUnits(a.expiresOn, b.expiresOn)));
  }

  /** what GET /v1/stock reports as sellable */
  sellable(sku: string, location: string, today: string): number {
    const level = this.level(sku, location);
    const free = Math.max(0, level.onHand - level.reserved);
    if (sku !== LOT_SKU) return free;
    const inLots = this.sellableLots(sku, location, today).reduce((sum, l) => sum + l.onHand - l.reserved, 0);
    return Math.min(free, inLots);
  }

  settle(order: ModelOrder, to: Status) {
    for (const hold of order.holds) {
      const level = this.levels.get(key(hold.sku, order.location))!;
      const lot = hold.lotId ? this.lotById(hold.lotId) : undefined;
      for (const row of lot ? [level, lot] : [level]) {
        row.reserved -= hold.qty;
        if (to === 'confirmed') row.onHand -= hold.qty;
      }
    }
    order.status = to;
  }
}

function dayString(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function expand(sku: string, qty: number): { sku: string; qty: number }[] {
  return sku === BUNDLE_SKU ? BUNDLE_COMPONENTS.map((c) => ({ sku: c.sku, qty: c.qty * qty })) : [{ sku, qty }];
}

/** the lot code actually sent (undefined = none), given whether the product is lot-tracked */
function lotCodeFor(sku: string, choice: LotChoice): LotCode | undefined {
  const wantsLot = (sku === LOT_SKU) !== choice.flip;
  return wantsLot ? choice.code : undefined;
}

interface Refusal {
  status: number;
  code: string;
  details?: unknown;
}

/** The product and lot-code checks adjustments, receipts and transfers share. */
function catalogRefusal(sku: string, lotCode: string | undefined): Refusal | undefined {
  if (sku === BUNDLE_SKU) return { status: 422, code: 'bundle_has_no_stock' };
  if (sku === LOT_SKU && !lotCode) return { status: 422, code: 'lot_required' };
  if (sku !== LOT_SKU && lotCode) return { status: 422, code: 'not_lot_tracked' };
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// running commands against the API and the model

const ORDER_PATH = { confirm: 'confirm', cancel: 'cancel', paymentFailed: 'payment-failed' } as const;
const ORDER_STATUS = { confirm: 'confirmed', cancel: 'cancelled', paymentFailed: 'payment_failed' } as const;

function expectAnswer(label: string, res: CallResult, expected: { status: number; code?: string; details?: unknown }) {
  expect(res.status, `${label} → 5xx ${JSON.stringify(res.body)}`).toBeLessThan(500);
  const actual = { status: res.status, code: res.status >= 400 ? res.body?.error?.code : undefined };
  expect(actual, `${label} → ${JSON.stringify(res.body)}`).toEqual({ status: expected.status, code: expected.code });
  if (expected.details !== undefined) expect(res.body.error.details, label).toEqual(expected.details);
}

function expectStockView(label: string, view: any, m: Model, sku: string, location: string) {
  const level = m.level(sku, location);
  expect(view, label).toMatchObject({ sku, location, on_hand: level.onHand, reserved: level.reserved, available: level.onHand - level.reserved });
}

async function step(h: Harness, m: Model, cmd: Cmd, label: string): Promise<void> {
  const now = h.clock.now();
  const today = dayString(now);

  switch (cmd.kind) {
    case 'createOrder': {
      const body = { location: cmd.location, lines: cmd.lines, ...(cmd.ttl !== null ? { ttl_seconds: cmd.ttl } : {}) };
      const res = await h.call('POST', '/v1/orders', { role: 'order-system', body });
      const total = new Map<string, { qty: number; lineSkus: Set<string> }>();
      for (const line of cmd.lines) {
        for (const need of expand(line.sku, line.qty)) {
          const entry = total.get(need.sku) ?? { qty: 0, lineSkus: new Set<string>() };
          entry.qty += need.qty;
          entry.lineSkus.add(line.sku);
          total.set(need.sku, entry);
        }
      }
      const short = [...total]
        .sort(([a], [b]) => byCodeUnits(a, b))
        .map(([sku, t]) => ({ sku, location: cmd.location, requested: t.qty, available: m.sellable(sku, cmd.location, today), line_skus: [...t.lineSkus].sort(byCodeUnits) }))
        .filter((l) => l.available < l.requested);
      if (short.length) {
        expectAnswer(label, res, { status: 409, code: 'insufficient_stock', details: { lines: short } });
        return;
      }
      expectAnswer(label, res, { status: 201 });
      // first expiry first over the lots, everything else from the level
      const holds: Hold[] = [];
      for (const [sku, t] of [...total].sort(([a], [b]) => byCodeUnits(a, b))) {
        if (sku !== LOT_SKU) {
          holds.push({ sku, lotId: null, qty: t.qty });
          continue;
        }
        let remaining = t.qty;
        for (const lot of m.sellableLots(sku, cmd.location, today)) {
          const take = Math.min(remaining, lot.onHand - lot.reserved);
          if (take > 0) holds.push({ sku, lotId: lot.id, qty: take });
          remaining -= take;
          if (remaining === 0) break;
        }
        expect(remaining, `${label}: model could not pick lots`).toBe(0);
      }
      const order = res.body;
      const ttl = cmd.ttl ?? TTL_SECONDS;
      expect(order, label).toMatchObject({
        status: 'reserved',
        location: cmd.location,
        expires_at: new Date(now.getTime() + ttl * 1000).toISOString(),
        lines: cmd.lines.map((l, i) => ({ line_no: i + 1, sku: l.sku, qty: l.qty })),
      });
      // the reservations cover each line's components exactly …
      const perLine = new Map<string, number>();
      for (const r of order.reservations) perLine.set(`${r.line_no}:${r.sku}`, (perLine.get(`${r.line_no}:${r.sku}`) ?? 0) + r.qty);
      const wantPerLine = new Map<string, number>();
      cmd.lines.forEach((l, i) => {
        for (const need of expand(l.sku, l.qty)) wantPerLine.set(`${i + 1}:${need.sku}`, (wantPerLine.get(`${i + 1}:${need.sku}`) ?? 0) + need.qty);
      });
      expect(Object.fromEntries(perLine), label).toEqual(Object.fromEntries(wantPerLine));
      // … and, summed per (sku, lot), are the first-expiry-first picks
      const perLot = new Map<string, number>();
      for (const r of order.reservations) perLot.set(`${r.sku}|${r.lot_id}`, (perLot.get(`${r.sku}|${r.lot_id}`) ?? 0) + r.qty);
      expect(Object.fromEntries(perLot), label).toEqual(Object.fromEntries(holds.map((x) => [`${x.sku}|${x.lotId}`, x.qty])));

      for (const hold of holds) {
        m.levels.get(key(hold.sku, cmd.location))!.reserved += hold.qty;
        if (hold.lotId) m.lotById(hold.lotId).reserved += hold.qty;
      }
      m.orders.push({ id: order.id, status: 'reserved', location: cmd.location, expiresAt: now.getTime() + ttl * 1000, holds });
      return;
    }

    case 'confirm':
    case 'cancel':
    case 'paymentFailed': {
      const to = ORDER_STATUS[cmd.kind];
      if (m.orders.length === 0) {
        const res = await h.call('POST', `/v1/orders/00000000-0000-4000-8000-000000000000/${ORDER_PATH[cmd.kind]}`, { role: 'order-system' });
        expectAnswer(label, res, { status: 404, code: 'not_found' });
        return;
      }
      const order = m.orders[cmd.pick % m.orders.length]!;
      const res = await h.call('POST', `/v1/orders/${order.id}/${ORDER_PATH[cmd.kind]}`, { role: 'order-system' });
      if (order.status === to) {
        expectAnswer(label, res, { status: 200 });
        expect(res.body.status, label).toBe(to);
      } else if (order.status !== 'reserved') {
        expectAnswer(label, res, { status: 409, code: 'invalid_transition' });
      } else if (to === 'confirmed' && order.expiresAt <= now.getTime()) {
        expectAnswer(label, res, { status: 409, code: 'reservation_expired' });
      } else {
        expectAnswer(label, res, { status: 200 });
        expect(res.body.status, label).toBe(to);
        m.settle(order, to);
      }
      return;
    }

    case 'expire': {
      if (cmd.advance === 'nextDue') {
        const next = m.orders.filter((o) => o.status === 'reserved' && o.expiresAt > now.getTime()).map((o) => o.expiresAt);
        if (next.length) h.clock.advance(Math.min(...next) - now.getTime());
      } else {
        h.clock.advance(cmd.advance);
      }
      if (!cmd.sweep) return;
      const at = h.clock.now().getTime();
      const due = m.orders.filter((o) => o.status === 'reserved' && o.expiresAt <= at);
      const expired = await expireDueOrders({ db: h.db, runCommand: h.runCommand, clock: h.clock.now, log: h.log });
      expect(expired, label).toBe(due.length);
      for (const o of due) m.settle(o, 'expired');
      return;
    }

    case 'adjust': {
      const lotCode = lotCodeFor(cmd.sku, cmd.lot);
      const body = { sku: cmd.sku, location: cmd.location, reason: cmd.reason, ...cmd.change, ...(lotCode ? { lot_code: lotCode } : {}) };
      const res = await h.call('POST', '/v1/adjustments', { role: 'clerk', body });
      const refusal = catalogRefusal(cmd.sku, lotCode);
      if (refusal) return expectAnswer(label, res, refusal);
      const lot = lotCode ? m.lots.get(lotKey(cmd.sku, cmd.location, lotCode)) : undefined;
      if (lotCode && !lot) return expectAnswer(label, res, { status: 404, code: 'not_found' });
      const held = lot ?? m.level(cmd.sku, cmd.location);
      const delta = 'counted' in cmd.change ? cmd.change.counted - held.onHand : cmd.change.delta;
      if (held.onHand + delta < 0) return expectAnswer(label, res, { status: 409, code: 'negative_stock' });
      if (held.onHand + delta < held.reserved) return expectAnswer(label, res, { status: 409, code: 'below_reserved' });
      expectAnswer(label, res, { status: 200 });
      const level = m.ensureLevel(cmd.sku, cmd.location);
      level.onHand += delta;
      if (lot) lot.onHand += delta;
      expect(res.body.delta, label).toBe(delta);
      expectStockView(label, res.body.stock, m, cmd.sku, cmd.location);
      if (lot) expect(res.body.lot, label).toMatchObject({ id: lot.id, on_hand: lot.onHand, reserved: lot.reserved });
      return;
    }

    case 'receipt': {
      const lotCode = lotCodeFor(cmd.sku, cmd.lot);
      const expiresOn = lotCode ? m.expiryOf(lotCode, cmd.wrongExpiry) : undefined;
      const body = { sku: cmd.sku, location: cmd.location, qty: cmd.qty, ...(lotCode ? { lot_code: lotCode, expires_on: expiresOn } : {}) };
      const res = await h.call('POST', '/v1/receipts', { role: 'clerk', body });
      const refusal = catalogRefusal(cmd.sku, lotCode);
      if (refusal) return expectAnswer(label, res, refusal);
      if (expiresOn && expiresOn <= today) return expectAnswer(label, res, { status: 422, code: 'lot_expired' });
      let lot = lotCode ? m.lots.get(lotKey(cmd.sku, cmd.location, lotCode)) : undefined;
      if (lot && lot.expiresOn !== expiresOn) return expectAnswer(label, res, { status: 409, code: 'lot_expiry_mismatch' });
      expectAnswer(label, res, { status: 201 });
      const level = m.ensureLevel(cmd.sku, cmd.location);
      if (lotCode && !lot) {
        lot = { id: String(res.body.lot.id), sku: cmd.sku, location: cmd.location, code: lotCode, expiresOn: expiresOn!, onHand: 0, reserved: 0 };
        m.lots.set(lotKey(cmd.sku, cmd.location, lotCode), lot);
      }
      level.onHand += cmd.qty;
      if (lot) lot.onHand += cmd.qty;
      expect(res.body.delta, label).toBe(cmd.qty);
      expectStockView(label, res.body.stock, m, cmd.sku, cmd.location);
      if (lot) expect(res.body.lot, label).toMatchObject({ id: lot.id, lot_code: lotCode, expires_on: lot.expiresOn, on_hand: lot.onHand, reserved: lot.reserved });
      return;
    }

    case 'transfer': {
      const to: Loc = cmd.from === 'MAIN' ? 'SHOP' : 'MAIN';
      const lotCode = lotCodeFor(cmd.sku, cmd.lot);
      const body = { sku: cmd.sku, from: cmd.from, to, qty: cmd.qty, ...(lotCode ? { lot_code: lotCode } : {}) };
      const res = await h.call('POST', '/v1/transfers', { role: 'clerk', body });
      const refusal = catalogRefusal(cmd.sku, lotCode);
      if (refusal) return expectAnswer(label, res, refusal);
      const sourceLot = lotCode ? m.lots.get(lotKey(cmd.sku, cmd.from, lotCode)) : undefined;
      if (lotCode && !sourceLot) return expectAnswer(label, res, { status: 404, code: 'not_found' });
      const held = sourceLot ?? m.level(cmd.sku, cmd.from);
      const free = held.onHand - held.reserved;
      if (free < cmd.qty) {
        return expectAnswer(label, res, {
          status: 409,
          code: 'insufficient_stock',
          details: { lines: [{ sku: cmd.sku, location: cmd.from, requested: cmd.qty, available: free, line_skus: [cmd.sku] }] },
        });
      }
      let targetLot = lotCode ? m.lots.get(lotKey(cmd.sku, to, lotCode)) : undefined;
      if (sourceLot && targetLot && targetLot.expiresOn !== sourceLot.expiresOn) {
        return expectAnswer(label, res, { status: 409, code: 'lot_expiry_mismatch' });
      }
      expectAnswer(label, res, { status: 201 });
      const source = m.ensureLevel(cmd.sku, cmd.from);
      const target = m.ensureLevel(cmd.sku, to);
      if (sourceLot && !targetLot) {
        targetLot = { id: String(res.body.to.lot.id), sku: cmd.sku, location: to, code: lotCode!, expiresOn: sourceLot.expiresOn, onHand: 0, reserved: 0 };
        m.lots.set(lotKey(cmd.sku, to, lotCode!), targetLot);
      }
      source.onHand -= cmd.qty;
      target.onHand += cmd.qty;
      if (sourceLot) sourceLot.onHand -= cmd.qty;
      if (targetLot) targetLot.onHand += cmd.qty;
      expectStockView(`${label} (from)`, res.body.from.stock, m, cmd.sku, cmd.from);
      expectStockView(`${label} (to)`, res.body.to.stock, m, cmd.sku, to);
      if (sourceLot) {
        expect(res.body.from.lot, label).toMatchObject({ id: sourceLot.id, on_hand: sourceLot.onHand, reserved: sourceLot.reserved });
        expect(res.body.to.lot, label).toMatchObject({ id: targetLot!.id, lot_code: lotCode, expires_on: sourceLot.expiresOn, on_hand: targetLot!.onHand });
      }
      return;
    }
  }
}

/** Compares everything the API reports about stock and orders with the model. */
async function compareWithApi(h: Harness, m: Model) {
  const today = dayString(h.clock.now());
  const byKey = (a: { sku: string; location: string }, b: { sku: string; location: string }) =>
    byCodeUnits(key(a.sku, a.location), key(b.sku, b.location));

  const { stock } = await h.ok(200, 'GET', '/v1/stock');
  const actual = stock.map((r: any) => ({ sku: r.sku, location: r.location, on_hand: r.on_hand, reserved: r.reserved, sellable: r.sellable })).sort(byKey);
  const expected = [...m.levels.values()]
    .map((l) => ({ sku: l.sku, location: l.location, on_hand: l.onHand, reserved: l.reserved, sellable: m.sellable(l.sku, l.location, today) }))
    .sort(byKey);
  expect(actual, 'GET /v1/stock').toEqual(expected);

  const cream = await h.ok(200, 'GET', `/v1/stock/${LOT_SKU}`);
  const byId = (a: { id: string }, b: { id: string }) => compareLotIds(a.id, b.id);
  expect(cream.lots.map((l: any) => ({ ...l, id: String(l.id) })).sort(byId), 'lots').toEqual(
    [...m.lots.values()]
      .map((l) => ({ id: l.id, location: l.location, lot_code: l.code, expires_on: l.expiresOn, on_hand: l.onHand, reserved: l.reserved, expired: l.expiresOn <= today }))
      .sort(byId),
  );

  const bundle = await h.ok(200, 'GET', `/v1/stock/${BUNDLE_SKU}`);
  const componentLocations = [...new Set([...m.levels.values()].filter((l) => BUNDLE_COMPONENTS.some((c) => c.sku === l.sku)).map((l) => l.location))].sort(byCodeUnits);
  expect(bundle.bundle_availability, 'bundle availability').toEqual(
    componentLocations.map((location) => ({
      location,
      available: Math.min(...BUNDLE_COMPONENTS.map((c) => Math.floor(m.sellable(c.sku, location, today) / c.qty))),
    })),
  );

  const { orders } = await h.ok(200, 'GET', '/v1/orders?limit=500');
  expect(Object.fromEntries(orders.map((o: any) => [o.id, o.status])), 'order statuses').toEqual(
    Object.fromEntries(m.orders.map((o) => [o.id, o.status])),
  );
}

const SEED: Cmd[] = [
  { kind: 'receipt', sku: 'SHEET', location: 'MAIN', qty: 15, lot: { code: 'L-MID', flip: false }, wrongExpiry: false },
  { kind: 'receipt', sku: 'SHEET', location: 'SHOP', qty: 4, lot: { code: 'L-MID', flip: false }, wrongExpiry: false },
  { kind: 'receipt', sku: 'PILLOW', location: 'MAIN', qty: 10, lot: { code: 'L-MID', flip: false }, wrongExpiry: false },
  { kind: 'receipt', sku: LOT_SKU, location: 'MAIN', qty: 5, lot: { code: 'L-SOON', flip: false }, wrongExpiry: false },
  { kind: 'receipt', sku: LOT_SKU, location: 'MAIN', qty: 8, lot: { code: 'L-MID', flip: false }, wrongExpiry: false },
  { kind: 'receipt', sku: LOT_SKU, location: 'SHOP', qty: 6, lot: { code: 'L-LATE', flip: false }, wrongExpiry: false },
];

describe('property: random command sequences keep the ledger consistent', () => {
  it('never answers 5xx, keeps the invariants after every command, and agrees with the model', async () => {
    let runs = 0;
    const statuses = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 10, maxLength: 30 }), async (cmds) => {
        runs += 1;
        const h = await createHarness({ poolMax: 4, ttlSeconds: TTL_SECONDS });
        try {
          for (const code of LOCATIONS) await h.fixtures.location(code);
          for (const sku of STOCKED) await h.fixtures.product(sku, sku === LOT_SKU ? { lot_tracked: true } : {});
          await h.fixtures.product(BUNDLE_SKU, { components: BUNDLE_COMPONENTS });
          const m = new Model(h.clock.now());
          for (const [i, cmd] of SEED.entries()) await step(h, m, cmd, `seed ${i} ${JSON.stringify(cmd)}`);
          for (const [i, cmd] of cmds.entries()) {
            const label = `command ${i} ${JSON.stringify(cmd)}`;
            await step(h, m, cmd, label);
            expect(await ledgerViolations(h.db), `ledger after ${label}`).toEqual([]);
            statuses.set(cmd.kind, (statuses.get(cmd.kind) ?? 0) + 1);
          }
          await compareWithApi(h, m);
        } finally {
          await h.close();
        }
      }),
      { numRuns: 30, interruptAfterTimeLimit: 80_000 },
    );
    expect(runs).toBeGreaterThanOrEqual(30);
    for (const kind of ['createOrder', 'confirm', 'cancel', 'paymentFailed', 'expire', 'adjust', 'transfer', 'receipt']) {
      expect(statuses.get(kind) ?? 0, `${kind} never generated`).toBeGreaterThan(0);
    }
  }, 120_000);
});
