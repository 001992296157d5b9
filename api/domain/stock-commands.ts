/**
 * Manual stock changes: adjustments (a delta or a counted quantity, always with a reason), receipts (lot
 * code and expiry for lot-tracked products) and transfers between locations. Each writes ledger rows
 * only; the schema's trigger moves the balances. Lot-tracked products are always changed per lot.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { MovementReason } from '../../db/schema.ts';
import { ApiError, NotFound, Unprocessable, VersionConflict } from '../errors.ts';
import type { CommandOutcome, CommandTx } from './command-runner.ts';
import { dayOf } from './orders.ts';
import { assertLocation, keyOf, lockStockRows, readStockRow, stockedProduct, toStockView, type StockRowView } from './stock-rows.ts';

interface Ctx {
  trx: CommandTx;
  actor: string;
  requestId: string;
  now: Date;
}

interface LotRow {
  id: string;
  lot_code: string;
  expires_on: string;
  on_hand: number;
  reserved: number;
}

interface Movement {
  sku: string;
  location: string;
  lotId: string | null;
  deltaOnHand: number;
  reason: MovementReason;
  cause?: string | null | undefined;
  ref?: string | null | undefined;
  note?: string | null | undefined;
}

/** Appends ledger rows (the trigger applies them to stock_levels and lots). */
export async function appendMovements(ctx: Ctx, movements: readonly Movement[]): Promise<void> {
  if (movements.length === 0) return;
  const m = movements;
  await sql`
    INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, cause, ref, note, actor, request_id)
    SELECT sku, location, lot_id, delta, 0, reason, cause, ref, note, ${ctx.actor}, ${ctx.requestId}
      FROM unnest(${m.map((x) => x.sku)}::text[], ${m.map((x) => x.location)}::text[], ${m.map((x) => x.lotId)}::bigint[],
                  ${m.map((x) => x.deltaOnHand)}::int[], ${m.map((x) => x.reason)}::text[], ${m.map((x) => x.cause ?? null)}::text[],
                  ${m.map((x) => x.ref ?? null)}::text[], ${m.map((x) => x.note ?? null)}::text[])
           WITH ORDINALITY AS t(sku, location, lot_id, delta, reason, cause, ref, note, n)
     ORDER BY sku, location, n`.execute(ctx.trx);
}

async function findLot(trx: CommandTx, sku: string, location: string, lotCode: string): Promise<LotRow | undefined> {
  return trx
    .selectFrom('lots')
    .select(['id', 'lot_code', 'expires_on', 'on_hand', 'reserved'])
    .where('sku', '=', sku)
    .where('location', '=', location)
    .where('lot_code', '=', lotCode)
    .executeTakeFirst();
}

function requireLotCode(product: { sku: string; lot_tracked: boolean }, lotCode: string | undefined): void {
  if (product.lot_tracked && !lotCode) {
    throw new Unprocessable('lot_required', `${product.sku} is lot-tracked: name the lot (lot_code)`, { sku: product.sku });
  }
  if (!product.lot_tracked && lotCode) {
    throw new Unprocessable('not_lot_tracked', `${product.sku} is not lot-tracked: omit lot_code`, { sku: product.sku });
  }
}

export interface AdjustmentInput {
  sku: string;
  location: string;
  lot_code?: string | undefined;
  delta?: number | undefined;
  counted?: number | undefined;
  reason: string;
  note?: string | undefined;
  expected_version?: number | undefined;
}

export interface StockChangeView {
  stock: StockRowView;
  lot?: { id: string; lot_code: string; expires_on: string; on_hand: number; reserved: number } | undefined;
  delta: number;
}

/** Applies a delta, or sets a counted quantity; refuses to go below what is reserved. */
export async function adjustStock(ctx: Ctx, input: AdjustmentInput): Promise<CommandOutcome<StockChangeView>> {
  const { trx } = ctx;
  const product = await stockedProduct(trx, input.sku);
  requireLotCode(product, input.lot_code);
  await assertLocation(trx, input.location);
  const key = { sku: input.sku, location: input.location };
  const locked = await lockStockRows(trx, [key], true);
  const row = locked.get(keyOf(key))!;
  const before = toStockView(row);
  if (input.expected_version !== undefined && input.expected_version !== before.version) throw new VersionConflict(before);

  let lot: LotRow | undefined;
  if (input.lot_code) {
    lot = await findLot(trx, input.sku, input.location, input.lot_code);
    if (!lot) throw new NotFound('lot', `${input.lot_code} of ${input.sku} at ${input.location}`);
  }
  const held = lot ?? row;
  const delta = input.counted !== undefined ? input.counted - held.on_hand : input.delta!;
  if (held.on_hand + delta < 0) {
    throw new ApiError(409, 'negative_stock', `only ${held.on_hand} units on hand; a delta of ${delta} would go below zero`, {
      on_hand: held.on_hand, requested_delta: delta,
    });
  }
  if (held.on_hand + delta < held.reserved) {
    throw new ApiError(409, 'below_reserved', `on hand cannot go below the ${held.reserved} units reserved by open orders`, {
      on_hand: held.on_hand, reserved: held.reserved, requested_delta: delta,
    });
  }
  if (delta !== 0) {
    await appendMovements(ctx, [{
      sku: input.sku, location: input.location, lotId: lot?.id ?? null, deltaOnHand: delta,
      reason: input.counted !== undefined ? 'count' : 'adjustment', cause: input.reason, note: input.note ?? null,
    }]);
  }

  const body = await changeView(trx, key, lot?.id, delta);
  return { status: 200, body, audit: { action: 'stock.adjust', entity: 'stock', entityId: `${input.sku}@${input.location}`, before, after: body } };
}

async function changeView(trx: CommandTx, key: { sku: string; location: string }, lotId: string | undefined, delta: number): Promise<StockChangeView> {
  const stock = (await readStockRow(trx, key))!;
  const lot = lotId
    ? await trx.selectFrom('lots').select(['id', 'lot_code', 'expires_on', 'on_hand', 'reserved']).where('id', '=', lotId).executeTakeFirstOrThrow()
    : undefined;
  return { stock, ...(lot ? { lot } : {}), delta };
}

export interface ReceiptInput {
  sku: string;
  location: string;
  qty: number;
  lot_code?: string | undefined;
  expires_on?: string | undefined;
  ref?: string | undefined;
  note?: string | undefined;
}

/** Books received goods; lot-tracked products need a lot code and expiry (an existing lot must match it). */
export async function receiveStock(ctx: Ctx, input: ReceiptInput): Promise<CommandOutcome<StockChangeView>> {
  const { trx } = ctx;
  const product = await stockedProduct(trx, input.sku);
  requireLotCode(product, input.lot_code);
  if (!product.lot_tracked && input.expires_on) {
    throw new Unprocessable('not_lot_tracked', `${input.sku} is not lot-tracked: omit expires_on`, { sku: input.sku });
  }
  if (product.lot_tracked && !input.expires_on) {
    throw new Unprocessable('expiry_required', `${input.sku} is lot-tracked: give the lot's expires_on date`, { sku: input.sku });
  }
  if (input.expires_on && input.expires_on <= dayOf(ctx.now)) {
    throw new Unprocessable('lot_expired', `lot ${input.lot_code} expires on ${input.expires_on}: expired stock cannot be received for sale`, {
      expires_on: input.expires_on,
    });
  }
  await assertLocation(trx, input.location);
  const key = { sku: input.sku, location: input.location };
  await lockStockRows(trx, [key], true);
  const lotId = input.lot_code ? await ensureLot(trx, key, input.lot_code, input.expires_on!) : null;
  await appendMovements(ctx, [{ ...key, lotId, deltaOnHand: input.qty, reason: 'receipt', ref: input.ref, note: input.note }]);
  const body = await changeView(trx, key, lotId ?? undefined, input.qty);
  return { status: 201, body, audit: { action: 'stock.receive', entity: 'stock', entityId: `${input.sku}@${input.location}`, after: body } };
}

async function ensureLot(trx: CommandTx, key: { sku: string; location: string }, lotCode: string, expiresOn: string): Promise<string> {
  await sql`INSERT INTO lots (sku, location, lot_code, expires_on) VALUES (${key.sku}, ${key.location}, ${lotCode}, ${expiresOn}::date)
            ON CONFLICT (sku, location, lot_code) DO NOTHING`.execute(trx);
  const lot = (await findLot(trx, key.sku, key.location, lotCode))!;
  if (lot.expires_on !== expiresOn) {
    throw new ApiError(409, 'lot_expiry_mismatch', `lot ${lotCode} of ${key.sku} is recorded as expiring on ${lot.expires_on}`, {
      lot_code: lotCode, recorded: lot.expires_on, given: expiresOn,
    });
  }
  return lot.id;
}

export interface TransferInput {
  sku: string;
  from: string;
  to: string;
  qty: number;
  lot_code?: string | undefined;
  note?: string | undefined;
}

export interface TransferView {
  transfer_id: string;
  from: StockChangeView;
  to: StockChangeView;
}

/** Moves unreserved units between locations (a lot keeps its code and expiry). */
export async function transferStock(ctx: Ctx, input: TransferInput): Promise<CommandOutcome<TransferView>> {
  const { trx } = ctx;
  if (input.from === input.to) throw new Unprocessable('same_location', 'from and to must be different locations');
  const product = await stockedProduct(trx, input.sku);
  requireLotCode(product, input.lot_code);
  await assertLocation(trx, input.from);
  await assertLocation(trx, input.to);
  const source = { sku: input.sku, location: input.from };
  const target = { sku: input.sku, location: input.to };
  const locked = await lockStockRows(trx, [source, target], true);
  const sourceRow = locked.get(keyOf(source))!;

  let sourceLot: LotRow | undefined;
  if (input.lot_code) {
    sourceLot = await findLot(trx, input.sku, input.from, input.lot_code);
    if (!sourceLot) throw new NotFound('lot', `${input.lot_code} of ${input.sku} at ${input.from}`);
  }
  const held = sourceLot ?? sourceRow;
  if (held.on_hand - held.reserved < input.qty) {
    throw new ApiError(409, 'insufficient_stock', `only ${held.on_hand - held.reserved} unreserved units of ${input.sku} at ${input.from}`, {
      lines: [{ sku: input.sku, location: input.from, requested: input.qty, available: held.on_hand - held.reserved, line_skus: [input.sku] }],
    });
  }
  const targetLotId = sourceLot ? await ensureLot(trx, target, sourceLot.lot_code, sourceLot.expires_on) : null;
  const transferId = randomUUID();
  await appendMovements(ctx, [
    { ...source, lotId: sourceLot?.id ?? null, deltaOnHand: -input.qty, reason: 'transfer_out', ref: transferId, note: input.note },
    { ...target, lotId: targetLotId, deltaOnHand: input.qty, reason: 'transfer_in', ref: transferId, note: input.note },
  ]);
  const body: TransferView = {
    transfer_id: transferId,
    from: await changeView(trx, source, sourceLot?.id, -input.qty),
    to: await changeView(trx, target, targetLotId ?? undefined, input.qty),
  };
  return { status: 201, body, audit: { action: 'stock.transfer', entity: 'stock', entityId: `${input.sku}@${input.from}->${input.to}`, after: body } };
}
