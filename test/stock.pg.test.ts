import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, dayFrom, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
  await h.fixtures.product('BUNDLE-COMP');
  await h.fixtures.product('BUNDLE-X', { components: [{ sku: 'BUNDLE-COMP', qty: 1 }] });
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

async function level(sku: string, location = 'MAIN') {
  const res = await h.ok(200, 'GET', `/v1/stock?sku=${sku}&location=${location}`);
  return res.stock[0];
}

async function lots(sku: string) {
  const res = await h.ok(200, 'GET', `/v1/stock/${sku}`);
  return res.lots as { id: string; location: string; lot_code: string; expires_on: string; on_hand: number; reserved: number; expired: boolean }[];
}

async function movementsOf(sku: string) {
  const res = await h.ok(200, 'GET', `/v1/movements?sku=${sku}&limit=1000`);
  return res.movements as any[];
}

async function movementCount(): Promise<number> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM stock_movements');
  return rows[0].n;
}

function adjust(body: Record<string, unknown>, role: 'admin' | 'clerk' | 'sheet-sync' = 'clerk') {
  return h.call('POST', '/v1/adjustments', { role, body });
}

describe('adjustments', () => {
  it('applies a delta and records it on the ledger with the reason as cause', async () => {
    await h.fixtures.product('ADJ-DELTA');
    await h.fixtures.receive('ADJ-DELTA', 'MAIN', 10);
    const res = await adjust({ sku: 'ADJ-DELTA', location: 'MAIN', delta: -3, reason: 'damaged', note: 'water leak' });
    expect(res.status).toBe(200);
    expect(res.body.delta).toBe(-3);
    expect(res.body.stock).toMatchObject({ sku: 'ADJ-DELTA', location: 'MAIN', on_hand: 7, reserved: 0, available: 7 });
    expect(await level('ADJ-DELTA')).toMatchObject({ on_hand: 7, available: 7, sellable: 7 });
    const [latest] = await movementsOf('ADJ-DELTA');
    expect(latest).toMatchObject({
      sku: 'ADJ-DELTA', location: 'MAIN', lot_id: null, delta_on_hand: -3, delta_reserved: 0,
      reason: 'adjustment', cause: 'damaged', note: 'water leak', actor: 'test-clerk',
    });
  });

  it('creates the stock row when a positive delta is the first stock at a location', async () => {
    await h.fixtures.product('ADJ-FOUND');
    const res = await adjust({ sku: 'ADJ-FOUND', location: 'SHOP', delta: 4, reason: 'found' });
    expect(res.status).toBe(200);
    expect(res.body.stock).toMatchObject({ on_hand: 4, reserved: 0 });
    expect(await level('ADJ-FOUND', 'SHOP')).toMatchObject({ on_hand: 4 });
  });

  it('sets a counted quantity and writes a count movement with the difference and the caller\'s reason', async () => {
    await h.fixtures.product('ADJ-COUNT');
    await h.fixtures.receive('ADJ-COUNT', 'MAIN', 7);
    const up = await adjust({ sku: 'ADJ-COUNT', location: 'MAIN', counted: 12, reason: 'correction' });
    expect(up.status).toBe(200);
    expect(up.body.delta).toBe(5);
    expect(up.body.stock.on_hand).toBe(12);
    const down = await adjust({ sku: 'ADJ-COUNT', location: 'MAIN', counted: 2, reason: 'lost' }, 'sheet-sync');
    expect(down.status).toBe(200);
    expect(down.body.delta).toBe(-10);
    expect(down.body.stock.on_hand).toBe(2);
    const [second, first] = await movementsOf('ADJ-COUNT');
    expect(first).toMatchObject({ reason: 'count', cause: 'correction', delta_on_hand: 5 });
    expect(second).toMatchObject({ reason: 'count', cause: 'lost', delta_on_hand: -10, actor: 'test-sheet-sync' });
  });

  it('writes no movement when the counted quantity equals what is on hand', async () => {
    await h.fixtures.product('ADJ-SAME');
    await h.fixtures.receive('ADJ-SAME', 'MAIN', 5);
    const before = await level('ADJ-SAME');
    const res = await adjust({ sku: 'ADJ-SAME', location: 'MAIN', counted: 5, reason: 'count' });
    expect(res.status).toBe(200);
    expect(res.body.delta).toBe(0);
    expect(await movementsOf('ADJ-SAME')).toHaveLength(1); // only the receipt
    expect((await level('ADJ-SAME')).version).toBe(before.version);
  });

  it('requires a known reason', async () => {
    await h.fixtures.product('ADJ-REASON');
    const count = await movementCount();
    const missing = await adjust({ sku: 'ADJ-REASON', location: 'MAIN', delta: 1 });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('validation_failed');
    expect(missing.body.error.details.issues.map((i: any) => i.path)).toContain('reason');
    const unknown = await adjust({ sku: 'ADJ-REASON', location: 'MAIN', delta: 1, reason: 'because' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('validation_failed');
    expect(await movementCount()).toBe(count);
  });

  it('requires exactly one of delta or counted, and a non-zero delta', async () => {
    await h.fixtures.product('ADJ-ONE');
    await h.fixtures.receive('ADJ-ONE', 'MAIN', 5);
    const count = await movementCount();
    for (const body of [
      { sku: 'ADJ-ONE', location: 'MAIN', reason: 'correction' },
      { sku: 'ADJ-ONE', location: 'MAIN', reason: 'correction', delta: 1, counted: 3 },
      { sku: 'ADJ-ONE', location: 'MAIN', reason: 'correction', delta: 0 },
      { sku: 'ADJ-ONE', location: 'MAIN', reason: 'correction', counted: -1 },
      { sku: 'ADJ-ONE', location: 'MAIN', reason: 'correction', delta: 1.5 },
    ]) {
      const res = await adjust(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect(await movementCount()).toBe(count);
    expect((await level('ADJ-ONE')).on_hand).toBe(5);
  });

  it('refuses a stale expected_version with 409 version_conflict carrying the current row', async () => {
    await h.fixtures.product('ADJ-VER');
    await h.fixtures.receive('ADJ-VER', 'MAIN', 5);
    const current = await level('ADJ-VER');
    const stale = await adjust({ sku: 'ADJ-VER', location: 'MAIN', delta: 1, reason: 'found', expected_version: current.version - 1 });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('version_conflict');
    const { sellable: _sellable, ...row } = current;
    expect(stale.body.error.details.current).toEqual(row);
    expect(await level('ADJ-VER')).toEqual(current);

    const fresh = await adjust({ sku: 'ADJ-VER', location: 'MAIN', delta: 1, reason: 'found', expected_version: current.version });
    expect(fresh.status).toBe(200);
    expect(fresh.body.stock.version).toBe(current.version + 1);
    const again = await adjust({ sku: 'ADJ-VER', location: 'MAIN', delta: 1, reason: 'found', expected_version: current.version });
    expect(again.status).toBe(409);
    expect(again.body.error.details.current.version).toBe(current.version + 1);
    expect(again.body.error.details.current.on_hand).toBe(6);
  });

  it('refuses to go below what open orders reserve (409 below_reserved), by delta or by count', async () => {
    await h.fixtures.product('ADJ-RES');
    await h.fixtures.receive('ADJ-RES', 'MAIN', 12);
    const order = await h.fixtures.order([{ sku: 'ADJ-RES', qty: 5 }]);
    const count = await movementCount();
    const byDelta = await adjust({ sku: 'ADJ-RES', location: 'MAIN', delta: -8, reason: 'damaged' });
    expect(byDelta.status).toBe(409);
    expect(byDelta.body.error.code).toBe('below_reserved');
    expect(byDelta.body.error.details).toEqual({ on_hand: 12, reserved: 5, requested_delta: -8 });
    const byCount = await adjust({ sku: 'ADJ-RES', location: 'MAIN', counted: 4, reason: 'count' });
    expect(byCount.status).toBe(409);
    expect(byCount.body.error.code).toBe('below_reserved');
    expect(await movementCount()).toBe(count);
    // exactly down to the reservation is fine
    const toReserved = await adjust({ sku: 'ADJ-RES', location: 'MAIN', delta: -7, reason: 'damaged' });
    expect(toReserved.status).toBe(200);
    expect(toReserved.body.stock).toMatchObject({ on_hand: 5, reserved: 5, available: 0 });
    await h.ok(200, 'POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' });
  });

  it('refuses to go below zero (409 negative_stock)', async () => {
    await h.fixtures.product('ADJ-NEG');
    await h.fixtures.receive('ADJ-NEG', 'MAIN', 3);
    const res = await adjust({ sku: 'ADJ-NEG', location: 'MAIN', delta: -4, reason: 'lost' });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('negative_stock');
    expect(res.body.error.details).toEqual({ on_hand: 3, requested_delta: -4 });
    expect((await level('ADJ-NEG')).on_hand).toBe(3);
    const never = await adjust({ sku: 'ADJ-NEG', location: 'SHOP', delta: -1, reason: 'lost' });
    expect(never.status).toBe(409);
    expect(never.body.error.code).toBe('negative_stock');
  });

  it('changes lot-tracked stock per lot, and requires the lot (422 lot_required)', async () => {
    await h.fixtures.product('ADJ-LOT', { lot_tracked: true });
    await h.fixtures.receive('ADJ-LOT', 'MAIN', 5, { lot_code: 'A1', expires_on: dayFrom(h.clock, 60) });
    await h.fixtures.receive('ADJ-LOT', 'MAIN', 5, { lot_code: 'B1', expires_on: dayFrom(h.clock, 90) });
    const missing = await adjust({ sku: 'ADJ-LOT', location: 'MAIN', delta: -1, reason: 'damaged' });
    expect(missing.status).toBe(422);
    expect(missing.body.error.code).toBe('lot_required');

    const res = await adjust({ sku: 'ADJ-LOT', location: 'MAIN', lot_code: 'A1', delta: -2, reason: 'damaged' });
    expect(res.status).toBe(200);
    expect(res.body.lot).toMatchObject({ lot_code: 'A1', on_hand: 3 });
    expect(res.body.stock.on_hand).toBe(8);
    const counted = await adjust({ sku: 'ADJ-LOT', location: 'MAIN', lot_code: 'B1', counted: 1, reason: 'count' });
    expect(counted.status).toBe(200);
    expect(counted.body.delta).toBe(-4);
    expect(counted.body.lot.on_hand).toBe(1);
    const byCode = Object.fromEntries((await lots('ADJ-LOT')).map((l) => [l.lot_code, l.on_hand]));
    expect(byCode).toEqual({ A1: 3, B1: 1 });
    expect((await level('ADJ-LOT')).on_hand).toBe(4);
    // a lot counted down to zero cannot go further
    const belowLot = await adjust({ sku: 'ADJ-LOT', location: 'MAIN', lot_code: 'B1', delta: -2, reason: 'lost' });
    expect(belowLot.status).toBe(409);
    expect(belowLot.body.error.code).toBe('negative_stock');

    const unknownLot = await adjust({ sku: 'ADJ-LOT', location: 'MAIN', lot_code: 'NOPE', delta: 1, reason: 'found' });
    expect(unknownLot.status).toBe(404);
    expect(unknownLot.body.error.code).toBe('not_found');
  });

  it('refuses a lot code for a product that is not lot-tracked (422 not_lot_tracked)', async () => {
    await h.fixtures.product('ADJ-NOLOT');
    const res = await adjust({ sku: 'ADJ-NOLOT', location: 'MAIN', lot_code: 'A1', delta: 1, reason: 'found' });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('not_lot_tracked');
  });

  it('refuses to adjust a bundle (422 bundle_has_no_stock), an unknown sku or an unknown location', async () => {
    const bundle = await adjust({ sku: 'BUNDLE-X', location: 'MAIN', delta: 1, reason: 'found' });
    expect(bundle.status).toBe(422);
    expect(bundle.body.error.code).toBe('bundle_has_no_stock');
    const sku = await adjust({ sku: 'NO-SUCH-SKU', location: 'MAIN', delta: 1, reason: 'found' });
    expect(sku.status).toBe(422);
    expect(sku.body.error.code).toBe('unknown_sku');
    const location = await adjust({ sku: 'BUNDLE-COMP', location: 'NOWHERE', delta: 1, reason: 'found' });
    expect(location.status).toBe(422);
    expect(location.body.error.code).toBe('unknown_location');
    const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM stock_levels WHERE sku = 'BUNDLE-X' OR location = 'NOWHERE'");
    expect(rows[0].n).toBe(0);
  });

  it('replays an adjustment retried with the same Idempotency-Key instead of applying it twice', async () => {
    await h.fixtures.product('ADJ-IDEM');
    await h.fixtures.receive('ADJ-IDEM', 'MAIN', 10);
    const body = { sku: 'ADJ-IDEM', location: 'MAIN', delta: -1, reason: 'sample' };
    const headers = { 'idempotency-key': 'adj-idem-1' };
    const first = await h.call('POST', '/v1/adjustments', { role: 'clerk', body, headers });
    const second = await h.call('POST', '/v1/adjustments', { role: 'clerk', body, headers });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect((await level('ADJ-IDEM')).on_hand).toBe(9);
  });
});

describe('receipts', () => {
  it('books a receipt with its reference on the ledger', async () => {
    await h.fixtures.product('REC-SIMPLE');
    const res = await h.call('POST', '/v1/receipts', { role: 'clerk', body: { sku: 'REC-SIMPLE', location: 'MAIN', qty: 9, ref: 'PO-77' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ delta: 9, stock: { on_hand: 9, reserved: 0, available: 9 } });
    expect(res.body.lot).toBeUndefined();
    const [m] = await movementsOf('REC-SIMPLE');
    expect(m).toMatchObject({ reason: 'receipt', delta_on_hand: 9, ref: 'PO-77', lot_id: null, actor: 'test-clerk' });
  });

  it('requires lot_code and expires_on for a lot-tracked product (422)', async () => {
    await h.fixtures.product('REC-LOT', { lot_tracked: true });
    const count = await movementCount();
    const noLot = await h.call('POST', '/v1/receipts', { body: { sku: 'REC-LOT', location: 'MAIN', qty: 1, expires_on: dayFrom(h.clock, 30) } });
    expect(noLot.status).toBe(422);
    expect(noLot.body.error.code).toBe('lot_required');
    const noExpiry = await h.call('POST', '/v1/receipts', { body: { sku: 'REC-LOT', location: 'MAIN', qty: 1, lot_code: 'L1' } });
    expect(noExpiry.status).toBe(422);
    expect(noExpiry.body.error.code).toBe('expiry_required');
    expect(await movementCount()).toBe(count);
    expect(await lots('REC-LOT')).toEqual([]);
  });

  it('adds to an existing lot with the same expiry, and refuses a different expiry (409 lot_expiry_mismatch)', async () => {
    await h.fixtures.product('REC-MIS', { lot_tracked: true });
    const expiry = dayFrom(h.clock, 45);
    const first = await h.fixtures.receive('REC-MIS', 'MAIN', 4, { lot_code: 'L1', expires_on: expiry });
    expect(first.lot).toMatchObject({ lot_code: 'L1', expires_on: expiry, on_hand: 4 });
    const second = await h.fixtures.receive('REC-MIS', 'MAIN', 2, { lot_code: 'L1', expires_on: expiry });
    expect(second.lot).toMatchObject({ id: first.lot.id, on_hand: 6 });
    const other = dayFrom(h.clock, 46);
    const res = await h.call('POST', '/v1/receipts', { body: { sku: 'REC-MIS', location: 'MAIN', qty: 3, lot_code: 'L1', expires_on: other } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('lot_expiry_mismatch');
    expect(res.body.error.details).toEqual({ lot_code: 'L1', recorded: expiry, given: other });
    expect(await lots('REC-MIS')).toMatchObject([{ lot_code: 'L1', expires_on: expiry, on_hand: 6 }]);
  });

  it('refuses an expiry of today or earlier (422 lot_expired)', async () => {
    await h.fixtures.product('REC-EXP', { lot_tracked: true });
    for (const days of [0, -1, -400]) {
      const res = await h.call('POST', '/v1/receipts', { body: { sku: 'REC-EXP', location: 'MAIN', qty: 1, lot_code: `E${-days}`, expires_on: dayFrom(h.clock, days) } });
      expect(res.status, `expiry ${days} days from today`).toBe(422);
      expect(res.body.error.code).toBe('lot_expired');
    }
    expect(await lots('REC-EXP')).toEqual([]);
    expect((await h.fixtures.receive('REC-EXP', 'MAIN', 1, { lot_code: 'E-1', expires_on: dayFrom(h.clock, 1) })).lot.on_hand).toBe(1);
  });

  it('refuses an unknown location, an unknown sku and a bundle (422)', async () => {
    await h.fixtures.product('REC-LOC');
    const loc = await h.call('POST', '/v1/receipts', { body: { sku: 'REC-LOC', location: 'NOWHERE', qty: 1 } });
    expect(loc.status).toBe(422);
    expect(loc.body.error.code).toBe('unknown_location');
    const sku = await h.call('POST', '/v1/receipts', { body: { sku: 'NO-SUCH-SKU', location: 'MAIN', qty: 1 } });
    expect(sku.status).toBe(422);
    expect(sku.body.error.code).toBe('unknown_sku');
    const bundle = await h.call('POST', '/v1/receipts', { body: { sku: 'BUNDLE-X', location: 'MAIN', qty: 1 } });
    expect(bundle.status).toBe(422);
    expect(bundle.body.error.code).toBe('bundle_has_no_stock');
  });

  it('refuses a non-positive or fractional quantity and a malformed date (400)', async () => {
    for (const body of [
      { sku: 'REC-LOC', location: 'MAIN', qty: 0 },
      { sku: 'REC-LOC', location: 'MAIN', qty: -2 },
      { sku: 'REC-LOC', location: 'MAIN', qty: 1.5 },
      { sku: 'REC-LOC', location: 'MAIN', qty: 1, lot_code: 'X', expires_on: '2027-02-30' },
      { sku: 'rec-lower', location: 'MAIN', qty: 1 },
    ]) {
      const res = await h.call('POST', '/v1/receipts', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
  });
});

describe('transfers', () => {
  it('moves units between locations with a pair of ledger rows sharing the transfer id', async () => {
    await h.fixtures.product('TRF-SIMPLE');
    await h.fixtures.receive('TRF-SIMPLE', 'MAIN', 10);
    const res = await h.call('POST', '/v1/transfers', { role: 'clerk', body: { sku: 'TRF-SIMPLE', from: 'MAIN', to: 'SHOP', qty: 4, note: 'shop refill' } });
    expect(res.status).toBe(201);
    expect(res.body.from).toMatchObject({ delta: -4, stock: { location: 'MAIN', on_hand: 6 } });
    expect(res.body.to).toMatchObject({ delta: 4, stock: { location: 'SHOP', on_hand: 4 } });
    expect((await level('TRF-SIMPLE', 'MAIN')).on_hand).toBe(6);
    expect((await level('TRF-SIMPLE', 'SHOP')).on_hand).toBe(4);
    const pair = (await movementsOf('TRF-SIMPLE')).filter((m) => m.ref === res.body.transfer_id);
    expect(pair.map((m) => [m.reason, m.location, m.delta_on_hand, m.note]).sort()).toEqual([
      ['transfer_in', 'SHOP', 4, 'shop refill'],
      ['transfer_out', 'MAIN', -4, 'shop refill'],
    ]);
  });

  it('keeps a lot\'s code and expiry at the destination, and adds to the same lot there later', async () => {
    await h.fixtures.product('TRF-LOT', { lot_tracked: true });
    const expiry = dayFrom(h.clock, 120);
    await h.fixtures.receive('TRF-LOT', 'MAIN', 8, { lot_code: 'LX-1', expires_on: expiry });
    await h.fixtures.receive('TRF-LOT', 'MAIN', 8, { lot_code: 'LY-2', expires_on: dayFrom(h.clock, 10) });
    const res = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-LOT', from: 'MAIN', to: 'SHOP', qty: 3, lot_code: 'LX-1' } });
    expect(res.status).toBe(201);
    expect(res.body.from.lot).toMatchObject({ lot_code: 'LX-1', expires_on: expiry, on_hand: 5 });
    expect(res.body.to.lot).toMatchObject({ lot_code: 'LX-1', expires_on: expiry, on_hand: 3 });
    expect(res.body.to.lot.id).not.toBe(res.body.from.lot.id);
    await h.ok(201, 'POST', '/v1/transfers', { body: { sku: 'TRF-LOT', from: 'MAIN', to: 'SHOP', qty: 2, lot_code: 'LX-1' } });
    const all = (await lots('TRF-LOT')).map((l) => [l.location, l.lot_code, l.expires_on, l.on_hand]);
    expect(all).toEqual([
      ['MAIN', 'LY-2', dayFrom(h.clock, 10), 8],
      ['MAIN', 'LX-1', expiry, 3],
      ['SHOP', 'LX-1', expiry, 5],
    ]);
    expect((await level('TRF-LOT', 'SHOP')).on_hand).toBe(5);
    const missingLot = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-LOT', from: 'MAIN', to: 'SHOP', qty: 1 } });
    expect(missingLot.status).toBe(422);
    expect(missingLot.body.error.code).toBe('lot_required');
  });

  it('refuses to merge into a destination lot with the same code but another expiry', async () => {
    await h.fixtures.product('TRF-MIS', { lot_tracked: true });
    await h.fixtures.receive('TRF-MIS', 'MAIN', 3, { lot_code: 'L1', expires_on: dayFrom(h.clock, 50) });
    await h.fixtures.receive('TRF-MIS', 'SHOP', 3, { lot_code: 'L1', expires_on: dayFrom(h.clock, 51) });
    const res = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-MIS', from: 'MAIN', to: 'SHOP', qty: 1, lot_code: 'L1' } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('lot_expiry_mismatch');
    expect((await lots('TRF-MIS')).map((l) => l.on_hand)).toEqual([3, 3]);
  });

  it('cannot move reserved units (409 insufficient_stock)', async () => {
    await h.fixtures.product('TRF-RES');
    await h.fixtures.receive('TRF-RES', 'MAIN', 6);
    const order = await h.fixtures.order([{ sku: 'TRF-RES', qty: 4 }]);
    const count = await movementCount();
    const res = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-RES', from: 'MAIN', to: 'SHOP', qty: 3 } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('insufficient_stock');
    expect(res.body.error.details.lines).toEqual([{ sku: 'TRF-RES', location: 'MAIN', requested: 3, available: 2, line_skus: ['TRF-RES'] }]);
    expect(await movementCount()).toBe(count);
    expect(await level('TRF-RES', 'SHOP')).toBeUndefined();
    await h.ok(201, 'POST', '/v1/transfers', { body: { sku: 'TRF-RES', from: 'MAIN', to: 'SHOP', qty: 2 } });
    expect(await level('TRF-RES', 'MAIN')).toMatchObject({ on_hand: 4, reserved: 4, available: 0 });
    await h.ok(200, 'POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' });
  });

  it('cannot move units reserved in a lot', async () => {
    await h.fixtures.product('TRF-LOTRES', { lot_tracked: true });
    await h.fixtures.receive('TRF-LOTRES', 'MAIN', 3, { lot_code: 'EARLY', expires_on: dayFrom(h.clock, 20) });
    await h.fixtures.receive('TRF-LOTRES', 'MAIN', 5, { lot_code: 'LATE', expires_on: dayFrom(h.clock, 200) });
    const order = await h.fixtures.order([{ sku: 'TRF-LOTRES', qty: 2 }]); // FEFO: 2 of EARLY
    const res = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-LOTRES', from: 'MAIN', to: 'SHOP', qty: 2, lot_code: 'EARLY' } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('insufficient_stock');
    expect(res.body.error.details.lines[0].available).toBe(1);
    await h.ok(200, 'POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' });
  });

  it('refuses the same location, an unknown location and a bundle (422)', async () => {
    await h.fixtures.product('TRF-BAD');
    await h.fixtures.receive('TRF-BAD', 'MAIN', 2);
    const same = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-BAD', from: 'MAIN', to: 'MAIN', qty: 1 } });
    expect(same.status).toBe(422);
    expect(same.body.error.code).toBe('same_location');
    const unknown = await h.call('POST', '/v1/transfers', { body: { sku: 'TRF-BAD', from: 'MAIN', to: 'NOWHERE', qty: 1 } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('unknown_location');
    const bundle = await h.call('POST', '/v1/transfers', { body: { sku: 'BUNDLE-X', from: 'MAIN', to: 'SHOP', qty: 1 } });
    expect(bundle.status).toBe(422);
    expect(bundle.body.error.code).toBe('bundle_has_no_stock');
    expect((await level('TRF-BAD')).on_hand).toBe(2);
  });
});

describe('GET /v1/movements', () => {
  beforeAll(async () => {
    await h.fixtures.product('MOV-A');
    await h.fixtures.product('MOV-B');
    for (let i = 1; i <= 5; i++) await h.fixtures.receive('MOV-A', i % 2 ? 'MAIN' : 'SHOP', i);
    await h.fixtures.receive('MOV-B', 'MAIN', 10);
  });

  it('filters by sku, location and order, newest first', async () => {
    const bySku = (await h.ok(200, 'GET', '/v1/movements?sku=MOV-A')).movements as any[];
    expect(bySku.map((m) => m.delta_on_hand)).toEqual([5, 4, 3, 2, 1]);
    expect(bySku.every((m) => m.sku === 'MOV-A')).toBe(true);
    const ids = bySku.map((m) => BigInt(m.id));
    expect([...ids].sort((a, b) => (a < b ? 1 : -1))).toEqual(ids);

    const both = (await h.ok(200, 'GET', '/v1/movements?sku=MOV-A&location=SHOP')).movements as any[];
    expect(both.map((m) => [m.location, m.delta_on_hand])).toEqual([['SHOP', 4], ['SHOP', 2]]);

    const byLocation = (await h.ok(200, 'GET', '/v1/movements?location=SHOP&limit=1000')).movements as any[];
    expect(byLocation.length).toBeGreaterThan(2);
    expect(byLocation.every((m) => m.location === 'SHOP')).toBe(true);

    const order = await h.fixtures.order([{ sku: 'MOV-B', qty: 2 }]);
    await h.ok(200, 'POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    const byOrder = (await h.ok(200, 'GET', `/v1/movements?order_id=${order.id}`)).movements as any[];
    expect(byOrder.map((m) => [m.reason, m.delta_on_hand, m.delta_reserved])).toEqual([['confirm', -2, -2], ['reservation', 0, 2]]);
    expect(byOrder.every((m) => m.order_id === order.id)).toBe(true);
    expect((await h.ok(200, 'GET', '/v1/movements?order_id=00000000-0000-4000-8000-000000000000')).movements).toEqual([]);
  });

  it('pages with before_id / next_before_id without gaps or repeats', async () => {
    const all = (await h.ok(200, 'GET', '/v1/movements?limit=1000')).movements as any[];
    expect(all.length).toBeGreaterThan(7);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: any = await h.ok(200, 'GET', `/v1/movements?limit=3${cursor ? `&before_id=${cursor}` : ''}`);
      expect(page.movements.length).toBeLessThanOrEqual(3);
      if (page.next_before_id !== null) {
        expect(page.movements).toHaveLength(3);
        expect(page.next_before_id).toBe(page.movements[2].id);
      }
      seen.push(...page.movements.map((m: any) => m.id));
      cursor = page.next_before_id;
      pages += 1;
      expect(pages).toBeLessThan(100);
    } while (cursor !== null);
    expect(seen).toEqual(all.map((m) => m.id));
    expect(pages).toBe(Math.floor(all.length / 3) + 1);

    const skuPage = await h.ok(200, 'GET', '/v1/movements?sku=MOV-A&limit=2');
    expect(skuPage.movements.map((m: any) => m.delta_on_hand)).toEqual([5, 4]);
    const next = await h.ok(200, 'GET', `/v1/movements?sku=MOV-A&limit=2&before_id=${skuPage.next_before_id}`);
    expect(next.movements.map((m: any) => m.delta_on_hand)).toEqual([3, 2]);
    const last = await h.ok(200, 'GET', `/v1/movements?sku=MOV-A&limit=2&before_id=${next.next_before_id}`);
    expect(last.movements.map((m: any) => m.delta_on_hand)).toEqual([1]);
    expect(last.next_before_id).toBeNull();
  });

  it('validates its query (400)', async () => {
    for (const q of ['limit=0', 'limit=1001', 'before_id=abc', 'before_id=-1', 'order_id=not-a-uuid', 'sku=lower']) {
      const res = await h.call('GET', `/v1/movements?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
  });
});

describe('the ledger in the database', () => {
  it('is append-only: UPDATE, DELETE and TRUNCATE of stock_movements are refused', async () => {
    const { rows } = await h.pool.query('SELECT id, delta_on_hand FROM stock_movements ORDER BY id LIMIT 1');
    const row = rows[0];
    const count = await movementCount();
    const refused = { code: '42501', message: expect.stringContaining('append-only') };
    await expect(h.pool.query('UPDATE stock_movements SET delta_on_hand = delta_on_hand + 1 WHERE id = $1', [row.id])).rejects.toMatchObject(refused);
    await expect(h.pool.query("UPDATE stock_movements SET note = 'edited'")).rejects.toMatchObject(refused);
    await expect(h.pool.query('DELETE FROM stock_movements WHERE id = $1', [row.id])).rejects.toMatchObject(refused);
    await expect(h.pool.query('DELETE FROM stock_movements')).rejects.toMatchObject(refused);
    await expect(h.pool.query('TRUNCATE stock_movements CASCADE')).rejects.toMatchObject({ code: '42501' });
    const again = await h.pool.query('SELECT delta_on_hand FROM stock_movements WHERE id = $1', [row.id]);
    expect(again.rows[0].delta_on_hand).toBe(row.delta_on_hand);
    expect(await movementCount()).toBe(count);
    const edited = await h.pool.query("SELECT count(*)::int AS n FROM stock_movements WHERE note = 'edited'");
    expect(edited.rows[0].n).toBe(0);
  });

  it('applies a direct ledger insert to the balance through the trigger', async () => {
    await h.fixtures.product('LEDGER-DIRECT');
    await h.fixtures.receive('LEDGER-DIRECT', 'MAIN', 5);
    await h.pool.query(
      "INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, cause, actor) VALUES ('LEDGER-DIRECT', 'MAIN', 2, 0, 'import', 'other', 'test')");
    expect((await level('LEDGER-DIRECT')).on_hand).toBe(7);
  });

  it('refuses, by CHECK constraint, a direct ledger insert that would make on_hand negative or over-reserve', async () => {
    const count = await movementCount();
    await expect(h.pool.query(
      "INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor) VALUES ('LEDGER-DIRECT', 'MAIN', -8, 0, 'adjustment', 'test')",
    )).rejects.toMatchObject({ code: '23514', constraint: 'stock_levels_quantities' });
    await expect(h.pool.query(
      "INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor) VALUES ('LEDGER-DIRECT', 'MAIN', 0, 8, 'reservation', 'test')",
    )).rejects.toMatchObject({ code: '23514', constraint: 'stock_levels_quantities' });
    const lot = (await lots('TRF-LOT')).find((l) => l.location === 'SHOP')!;
    await expect(h.pool.query(
      "INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, actor) VALUES ('TRF-LOT', 'SHOP', $1, $2, 0, 'adjustment', 'test')",
      [lot.id, -(lot.on_hand + 1)],
    )).rejects.toMatchObject({ code: '23514' });
    // a lot of another product or location is refused too
    await expect(h.pool.query(
      "INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, actor) VALUES ('TRF-LOT', 'MAIN', $1, 1, 0, 'adjustment', 'test')",
      [lot.id],
    )).rejects.toMatchObject({ code: '23503' });
    expect(await movementCount()).toBe(count);
    expect((await level('LEDGER-DIRECT')).on_hand).toBe(7);
  });
});
