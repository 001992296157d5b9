/**
 * Concurrency: many orders racing for the same stock rows must never over-reserve, never reserve an
 * expired lot, never refuse an order that could have been met, and never deadlock (a deadlock would
 * surface as a 500, since Postgres aborts one of the transactions).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireDueOrders } from '../api/maintenance.ts';
import { createHarness, dayFrom, type CallResult, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness({ poolMax: 20, ttlSeconds: 3600 });
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

type Line = { sku: string; qty: number };

interface StockRow {
  sku: string;
  location: string;
  on_hand: number;
  reserved: number;
}

interface LotRow {
  id: string;
  location: string;
  lot_code: string;
  expires_on: string;
  on_hand: number;
  reserved: number;
  expired: boolean;
}

async function stock(sku: string, location = 'MAIN'): Promise<StockRow> {
  const res = await h.ok(200, 'GET', `/v1/stock?sku=${sku}&location=${location}`);
  expect(res.stock).toHaveLength(1);
  return res.stock[0];
}

async function lotsOf(sku: string): Promise<Record<string, LotRow>> {
  const res = await h.ok(200, 'GET', `/v1/stock/${sku}`);
  return Object.fromEntries(res.lots.map((l: LotRow) => [l.lot_code, l]));
}

function placeOrder(lines: Line[]): Promise<CallResult> {
  return h.call('POST', '/v1/orders', { role: 'order-system', body: { lines } });
}

/** Every answer is a 201 or a 409 insufficient_stock; anything else (500 on deadlock, stock_constraint…) fails. */
function expectOnlyReservedOrShort(results: CallResult[]) {
  const unexpected = results
    .map((r, i) => ({ i, status: r.status, code: r.body?.error?.code, body: r.body }))
    .filter((r) => !(r.status === 201 || (r.status === 409 && r.code === 'insufficient_stock')));
  expect(unexpected).toEqual([]);
}

/** Units per sku that an order's reservations hold. */
function reservedBySku(order: { reservations: { sku: string; qty: number }[] }): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of order.reservations) out.set(r.sku, (out.get(r.sku) ?? 0) + r.qty);
  return out;
}

function addInto(target: Map<string, number>, source: Map<string, number>) {
  for (const [k, v] of source) target.set(k, (target.get(k) ?? 0) + v);
}

describe('concurrent orders', () => {
  it('300 concurrent orders for a SKU holding 50 reserve exactly 50 units', async () => {
    await h.fixtures.product('RACE-ONE');
    await h.fixtures.receive('RACE-ONE', 'MAIN', 50);

    const results = await Promise.all(Array.from({ length: 300 }, () => placeOrder([{ sku: 'RACE-ONE', qty: 1 }])));

    expectOnlyReservedOrShort(results);
    const created = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 409);
    expect(created).toHaveLength(50);
    expect(refused).toHaveLength(250);
    expect(new Set(created.map((r) => r.body.id)).size).toBe(50);
    for (const r of created) expect(r.body.reservations).toEqual([{ line_no: 1, sku: 'RACE-ONE', lot_id: null, qty: 1 }]);
    for (const r of refused) {
      expect(r.body.error.code).toBe('insufficient_stock');
      expect(r.body.error.details.lines).toEqual([{ sku: 'RACE-ONE', location: 'MAIN', requested: 1, available: 0, line_skus: ['RACE-ONE'] }]);
    }

    const row = await stock('RACE-ONE');
    expect(row.reserved).toBe(50);
    expect(row.on_hand).toBe(50);
    const { rows } = await h.pool.query(
      `SELECT count(*)::int AS n, coalesce(sum(qty), 0)::int AS qty FROM reservations WHERE sku = 'RACE-ONE'`,
    );
    expect(rows[0]).toEqual({ n: 50, qty: 50 });
    expect(await ledgerViolations(h.db)).toEqual([]);
  });

  it('bundles and plain orders sharing components never over-reserve, never reserve expired lots, and settle concurrently', async () => {
    await h.fixtures.product('MIX-SHEET');
    await h.fixtures.product('MIX-CREAM', { lot_tracked: true });
    await h.fixtures.product('MIX-BUNDLE', { components: [{ sku: 'MIX-SHEET', qty: 1 }, { sku: 'MIX-CREAM', qty: 2 }] });
    await h.fixtures.receive('MIX-SHEET', 'MAIN', 30);
    // 10 units in a lot that will have expired by the time the orders arrive: on hand, but never sellable
    await h.fixtures.receive('MIX-CREAM', 'MAIN', 10, { lot_code: 'OLD', expires_on: dayFrom(h.clock, 2) });
    h.clock.advance(3 * 86_400_000);
    try {
      await h.fixtures.receive('MIX-CREAM', 'MAIN', 15, { lot_code: 'LATE', expires_on: dayFrom(h.clock, 300) });
      await h.fixtures.receive('MIX-CREAM', 'MAIN', 15, { lot_code: 'EARLY', expires_on: dayFrom(h.clock, 30) });
      await h.fixtures.receive('MIX-CREAM', 'MAIN', 10, { lot_code: 'MID', expires_on: dayFrom(h.clock, 90) });
      const SELLABLE = { 'MIX-SHEET': 30, 'MIX-CREAM': 40 };
      const RECEIVED = { 'MIX-SHEET': 30, 'MIX-CREAM': 50 };
      const initialLots = await lotsOf('MIX-CREAM');
      expect(initialLots.OLD!.expired).toBe(true);

      const shapes: Line[][] = [
        [{ sku: 'MIX-BUNDLE', qty: 1 }],
        [{ sku: 'MIX-SHEET', qty: 1 }],
        [{ sku: 'MIX-CREAM', qty: 1 }],
        [{ sku: 'MIX-BUNDLE', qty: 2 }],
        [{ sku: 'MIX-CREAM', qty: 3 }],
        [{ sku: 'MIX-SHEET', qty: 1 }, { sku: 'MIX-CREAM', qty: 1 }],
        [{ sku: 'MIX-CREAM', qty: 2 }, { sku: 'MIX-BUNDLE', qty: 1 }],
        [{ sku: 'MIX-BUNDLE', qty: 1 }, { sku: 'MIX-SHEET', qty: 2 }, { sku: 'MIX-CREAM', qty: 1 }],
        [{ sku: 'MIX-SHEET', qty: 2 }],
      ];
      const expand = (lines: Line[]) => {
        const need = new Map<string, number>();
        for (const l of lines) {
          if (l.sku === 'MIX-BUNDLE') addInto(need, new Map([['MIX-SHEET', l.qty], ['MIX-CREAM', 2 * l.qty]]));
          else addInto(need, new Map([[l.sku, l.qty]]));
        }
        return need;
      };
      const requests = Array.from({ length: 300 }, (_, i) => shapes[(i * 7 + (i >> 3)) % shapes.length]!);
      const results = await Promise.all(requests.map((lines) => placeOrder(lines)));

      expectOnlyReservedOrShort(results);
      const created = results.map((r, i) => ({ r, lines: requests[i]! })).filter((x) => x.r.status === 201);
      const refused = results.map((r, i) => ({ r, lines: requests[i]! })).filter((x) => x.r.status === 409);
      expect(created.length).toBeGreaterThan(10);
      expect(refused.length).toBeGreaterThan(100); // demand is far above supply

      // each successful order holds exactly what its lines ask for, and never a unit of the expired lot
      const held = new Map<string, number>();
      const heldByLot = new Map<string, number>();
      for (const { r, lines } of created) {
        expect(Object.fromEntries(reservedBySku(r.body))).toEqual(Object.fromEntries(expand(lines)));
        for (const res of r.body.reservations) {
          if (res.sku === 'MIX-CREAM') {
            expect(res.lot_id).not.toBeNull();
            expect(res.lot_id).not.toBe(initialLots.OLD!.id);
            heldByLot.set(res.lot_id, (heldByLot.get(res.lot_id) ?? 0) + res.qty);
          } else {
            expect(res.lot_id).toBeNull();
          }
        }
        addInto(held, reservedBySku(r.body));
      }

      const sheet = await stock('MIX-SHEET');
      const cream = await stock('MIX-CREAM');
      expect(sheet).toMatchObject({ on_hand: RECEIVED['MIX-SHEET'], reserved: held.get('MIX-SHEET') ?? 0 });
      expect(cream).toMatchObject({ on_hand: RECEIVED['MIX-CREAM'], reserved: held.get('MIX-CREAM') ?? 0 });
      expect(sheet.reserved).toBeLessThanOrEqual(SELLABLE['MIX-SHEET']);
      expect(cream.reserved).toBeLessThanOrEqual(SELLABLE['MIX-CREAM']);

      const lots = await lotsOf('MIX-CREAM');
      for (const lot of Object.values(lots)) {
        expect(lot.reserved).toBeLessThanOrEqual(lot.on_hand);
        expect(lot.reserved).toBe(heldByLot.get(lot.id) ?? 0);
      }
      expect(lots.OLD!.reserved).toBe(0);
      // orders were served one at a time per stock row, each first-expiry-first: a later lot is only
      // touched once every earlier lot is fully reserved
      const fefo = [lots.EARLY!, lots.MID!, lots.LATE!];
      for (let i = 1; i < fefo.length; i++) {
        if (fefo[i]!.reserved > 0) expect(fefo[i - 1]!.reserved).toBe(fefo[i - 1]!.on_hand);
      }

      // no order was refused while it could have been met: stock only shrank during the race, so every
      // refused order must still be short now
      const free = { 'MIX-SHEET': SELLABLE['MIX-SHEET'] - sheet.reserved, 'MIX-CREAM': SELLABLE['MIX-CREAM'] - cream.reserved };
      for (const { r, lines } of refused) {
        const need = expand(lines);
        const short = [...need].some(([sku, qty]) => qty > free[sku as keyof typeof free]);
        expect(short, `order ${JSON.stringify(lines)} refused although ${JSON.stringify(free)} is free`).toBe(true);
        for (const line of r.body.error.details.lines) expect(line.available).toBeLessThan(line.requested);
      }
      expect(await ledgerViolations(h.db)).toEqual([]);

      // settle concurrently: confirm some, cancel some, race confirm against cancel on others, keep the rest
      const plan = created.map((c, i) => ({ c, action: (['confirm', 'cancel', 'race', 'keep'] as const)[i % 4]! }));
      const transition = (id: string, path: string) => h.call('POST', `/v1/orders/${id}/${path}`, { role: 'order-system' });
      const settled = await Promise.all(
        plan.map(async ({ c, action }) => {
          const id = c.r.body.id as string;
          if (action === 'keep') return { c, final: 'reserved' };
          if (action !== 'race') {
            const res = await transition(id, action);
            expect(res.status, JSON.stringify(res.body)).toBe(200);
            expect(res.body.status).toBe(action === 'confirm' ? 'confirmed' : 'cancelled');
            return { c, final: res.body.status as string };
          }
          const [confirm, cancel] = await Promise.all([transition(id, 'confirm'), transition(id, 'cancel')]);
          // exactly one of the two wins; the loser is told the order already ended
          expect([confirm.status, cancel.status].sort()).toEqual([200, 409]);
          const loser = confirm.status === 409 ? confirm : cancel;
          expect(loser.body.error.code).toBe('invalid_transition');
          return { c, final: (confirm.status === 200 ? confirm : cancel).body.status as string };
        }),
      );
      expect(settled.some((s) => s.final === 'confirmed')).toBe(true);
      expect(settled.some((s) => s.final === 'cancelled')).toBe(true);

      const confirmed = new Map<string, number>();
      const stillReserved = new Map<string, number>();
      const confirmedByLot = new Map<string, number>();
      const reservedByLot = new Map<string, number>();
      for (const { c, final } of settled) {
        expect((await h.ok(200, 'GET', `/v1/orders/${c.r.body.id}`)).status).toBe(final);
        if (final === 'confirmed') addInto(confirmed, reservedBySku(c.r.body));
        if (final === 'reserved') addInto(stillReserved, reservedBySku(c.r.body));
        for (const res of c.r.body.reservations) {
          if (!res.lot_id) continue;
          const into = final === 'confirmed' ? confirmedByLot : final === 'reserved' ? reservedByLot : undefined;
          into?.set(res.lot_id, (into.get(res.lot_id) ?? 0) + res.qty);
        }
      }

      for (const sku of ['MIX-SHEET', 'MIX-CREAM'] as const) {
        const row = await stock(sku);
        const used = confirmed.get(sku) ?? 0;
        expect(row.on_hand, sku).toBe(RECEIVED[sku] - used);
        expect(row.reserved, sku).toBe(stillReserved.get(sku) ?? 0);
        expect(used + row.reserved, sku).toBeLessThanOrEqual(SELLABLE[sku]);
      }
      const after = await lotsOf('MIX-CREAM');
      for (const [code, lot] of Object.entries(after)) {
        const before = initialLots[code]!;
        expect(lot.on_hand, code).toBe(before.on_hand - (confirmedByLot.get(lot.id) ?? 0));
        expect(lot.reserved, code).toBe(reservedByLot.get(lot.id) ?? 0);
        expect(lot.reserved + (confirmedByLot.get(lot.id) ?? 0), code).toBeLessThanOrEqual(before.on_hand);
      }
      expect(after.OLD).toMatchObject({ on_hand: 10, reserved: 0 });
      expect(await ledgerViolations(h.db)).toEqual([]);
    } finally {
      h.clock.advance(-3 * 86_400_000);
    }
  });

  it('orders naming the same two SKUs in opposite line order do not deadlock', async () => {
    await h.fixtures.product('LOCK-A');
    await h.fixtures.product('LOCK-B');
    await h.fixtures.receive('LOCK-A', 'MAIN', 120);
    await h.fixtures.receive('LOCK-B', 'MAIN', 120);

    // 240 orders, half A-then-B and half B-then-A, each taking one of both: exactly 120 fit
    const requests: Line[][] = Array.from({ length: 240 }, (_, i) =>
      i % 2 === 0 ? [{ sku: 'LOCK-A', qty: 1 }, { sku: 'LOCK-B', qty: 1 }] : [{ sku: 'LOCK-B', qty: 1 }, { sku: 'LOCK-A', qty: 1 }],
    );
    const results = await Promise.all(requests.map((lines) => placeOrder(lines)));
    expectOnlyReservedOrShort(results);
    const created = results.filter((r) => r.status === 201);
    expect(created).toHaveLength(120);
    expect(await stock('LOCK-A')).toMatchObject({ on_hand: 120, reserved: 120 });
    expect(await stock('LOCK-B')).toMatchObject({ on_hand: 120, reserved: 120 });

    // settling them (order row, then both stock rows) while new opposite-order orders arrive
    const mixed = await Promise.all([
      ...created.map((r, i) => h.call('POST', `/v1/orders/${r.body.id}/${i % 2 ? 'confirm' : 'cancel'}`, { role: 'order-system' })),
      ...requests.slice(0, 120).map((lines) => placeOrder(lines)),
    ]);
    const settle = mixed.slice(0, created.length);
    const reorders = mixed.slice(created.length);
    expect(settle.filter((r) => r.status !== 200)).toEqual([]);
    expectOnlyReservedOrShort(reorders);
    const placed = reorders.filter((r) => r.status === 201).length;
    const consumed = created.length / 2;
    for (const sku of ['LOCK-A', 'LOCK-B']) {
      expect(await stock(sku)).toMatchObject({ on_hand: 120 - consumed, reserved: placed });
    }
    // only units freed by the cancels can be re-reserved (how many depends on the interleaving)
    expect(placed).toBeLessThanOrEqual(created.length - consumed);
    expect(await ledgerViolations(h.db)).toEqual([]);
  });

  it('the expiry sweep racing cancels of the same overdue orders releases each reservation once', async () => {
    await h.fixtures.product('SWEEP-A');
    await h.fixtures.receive('SWEEP-A', 'MAIN', 40);
    const orders = await Promise.all(Array.from({ length: 40 }, () => h.fixtures.order([{ sku: 'SWEEP-A', qty: 1 }], { ttl_seconds: 5 })));
    expect((await stock('SWEEP-A')).reserved).toBe(40);
    h.clock.advance(6_000);
    const sweep = () => expireDueOrders({ db: h.db, runCommand: h.runCommand, clock: h.clock.now, log: h.log });
    const [expiredA, expiredB, ...cancels] = await Promise.all([
      sweep(),
      sweep(),
      ...orders.map((o) => h.call('POST', `/v1/orders/${o.id}/cancel`, { role: 'order-system' })),
    ]);
    expect(cancels.filter((r) => !(r.status === 200 || (r.status === 409 && r.body.error.code === 'invalid_transition')))).toEqual([]);
    const cancelled = cancels.filter((r) => r.status === 200).length;
    expect((expiredA as number) + (expiredB as number) + cancelled).toBe(40);
    const { rows } = await h.pool.query(
      `SELECT o.status, count(m.id)::int AS releases FROM orders o
         JOIN order_lines l ON l.order_id = o.id AND l.sku = 'SWEEP-A'
         LEFT JOIN stock_movements m ON m.order_id = o.id AND m.reason = 'release'
        GROUP BY o.id, o.status`,
    );
    expect(rows).toHaveLength(40);
    for (const row of rows) {
      expect(['expired', 'cancelled']).toContain(row.status);
      expect(row.releases).toBe(1);
    }
    expect(rows.filter((r) => r.status === 'cancelled')).toHaveLength(cancelled);
    expect(await stock('SWEEP-A')).toMatchObject({ on_hand: 40, reserved: 0 });
    expect(await ledgerViolations(h.db)).toEqual([]);
  });

  it('transfers in both directions between the same two locations do not deadlock', async () => {
    await h.fixtures.product('LOCK-T');
    await h.fixtures.receive('LOCK-T', 'MAIN', 100);
    await h.fixtures.receive('LOCK-T', 'SHOP', 100);
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        h.call('POST', '/v1/transfers', {
          role: 'clerk',
          body: i % 2 ? { sku: 'LOCK-T', from: 'MAIN', to: 'SHOP', qty: 1 } : { sku: 'LOCK-T', from: 'SHOP', to: 'MAIN', qty: 1 },
        }),
      ),
    );
    expect(results.filter((r) => r.status !== 201).map((r) => r.body)).toEqual([]);
    // as many went one way as the other
    expect(await stock('LOCK-T', 'MAIN')).toMatchObject({ on_hand: 100, reserved: 0 });
    expect(await stock('LOCK-T', 'SHOP')).toMatchObject({ on_hand: 100, reserved: 0 });
    expect(await ledgerViolations(h.db)).toEqual([]);
  });
});
