/**
 * Orders after they exist: reading them, and settling their reservations — confirm consumes the reserved
 * units (on hand and reserved both drop), cancel / payment failure / expiry release them. Each runs inside
 * one command transaction; the order row is locked first, then its stock rows in (sku, location) order,
 * and the ledger insert is the only write that moves stock (the schema's trigger applies it).
 * Placing an order is in order-placement.ts.
 */
import { sql, type Kysely } from 'kysely';
import type { Database, OrderStatus } from '../../db/schema.ts';
import { ApiError, InvalidTransition, NotFound } from '../errors.ts';
import type { CommandOutcome, CommandTx } from './command-runner.ts';
import { decideTransition, stockEffect, type TargetStatus } from './order-state.ts';

export interface NewOrder {
  location: string;
  externalRef?: string | undefined;
  lines: { sku: string; qty: number }[];
  /** already encrypted */
  customerContact?: string | null | undefined;
  ttlSeconds: number;
}

export interface OrderView {
  id: string;
  external_ref: string | null;
  status: OrderStatus;
  location: string;
  expires_at: string;
  version: number;
  created_at: string;
  updated_at: string;
  lines: { line_no: number; sku: string; qty: number }[];
  reservations: { line_no: number; sku: string; lot_id: string | null; qty: number }[];
}

export interface Ctx {
  trx: CommandTx;
  actor: string;
  requestId: string;
  now: Date;
}

/** Calendar day (UTC) used for lot expiry decisions. */
export function dayOf(now: Date): string {
  return now.toISOString().slice(0, 10);
}

interface OrderRow {
  id: string;
  external_ref: string | null;
  status: OrderStatus;
  location: string;
  expires_at: Date;
  customer_contact: string | null;
  version: string;
  created_at: Date;
  updated_at: Date;
}

/** Reads an order with its lines and reservations (`forUpdate` locks the order row first). */
export async function readOrder(trx: Kysely<Database>, id: string, forUpdate = false): Promise<{ row: OrderRow; view: OrderView } | undefined> {
  const lock = forUpdate ? sql`FOR UPDATE` : sql``;
  const { rows } = await sql<OrderRow>`
    SELECT id, external_ref, status, location, expires_at, customer_contact, version, created_at, updated_at
      FROM orders WHERE id = ${id} ${lock}`.execute(trx);
  const row = rows[0];
  if (!row) return undefined;
  const [lines, reservations] = await Promise.all([
    trx.selectFrom('order_lines').select(['line_no', 'sku', 'qty']).where('order_id', '=', id).orderBy('line_no').execute(),
    trx.selectFrom('reservations').select(['line_no', 'sku', 'lot_id', 'qty']).where('order_id', '=', id).orderBy('id').execute(),
  ]);
  return { row, view: toView(row, lines, reservations) };
}

function toView(row: OrderRow, lines: OrderView['lines'], reservations: OrderView['reservations']): OrderView {
  return {
    id: row.id,
    external_ref: row.external_ref,
    status: row.status,
    location: row.location,
    expires_at: row.expires_at.toISOString(),
    version: Number(row.version),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    lines,
    reservations,
  };
}

/**
 * Moves a reserved order to `to`: confirmed consumes its reservations, the other end states release them.
 * Asking for the state it is already in returns it unchanged; other moves from an end state are 409.
 */
export async function transitionOrder(ctx: Ctx, id: string, to: TargetStatus): Promise<CommandOutcome<OrderView>> {
  const { trx } = ctx;
  const current = await readOrder(trx, id, true);
  if (!current) throw new NotFound('order', id);
  const { row, view } = current;
  const decision = decideTransition(row.status, to);
  const audit = { action: `order.${to}`, entity: 'order', entityId: id, before: { status: row.status } };
  if (decision === 'replay') return { status: 200, body: view, audit: { ...audit, after: { status: row.status, replay: true } } };
  if (decision === 'refuse') throw new InvalidTransition(id, row.status, to);
  if (to === 'confirmed' && row.expires_at.getTime() <= ctx.now.getTime()) {
    throw new ApiError(409, 'reservation_expired', `order ${id}'s reservation expired at ${row.expires_at.toISOString()}; place a new order`, {
      order_id: id,
      expires_at: row.expires_at.toISOString(),
    });
  }

  const consume = stockEffect(to) === 'consume';
  // lock the order's stock rows in (sku, location) order, then write its ledger rows and the new status
  await sql`SELECT 1 FROM stock_levels
             WHERE (sku, location) IN (SELECT sku, location FROM reservations WHERE order_id = ${id})
             ORDER BY sku, location FOR UPDATE`.execute(trx);
  const { rows } = await sql<{ version: string; updated_at: Date }>`
    WITH moves AS (
      INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, order_id, actor, request_id)
      SELECT r.sku, r.location, r.lot_id, ${consume ? sql`-r.qty` : sql`0`}, -r.qty, ${consume ? 'confirm' : 'release'},
             r.order_id, ${ctx.actor}, ${ctx.requestId}
        FROM reservations r
       WHERE r.order_id = ${id}
       ORDER BY r.sku, r.location, r.id
    )
    UPDATE orders SET status = ${to} WHERE id = ${id} RETURNING version, updated_at`.execute(trx);
  const updated = rows[0]!;
  const after: OrderView = { ...view, status: to, version: Number(updated.version), updated_at: updated.updated_at.toISOString() };
  return { status: 200, body: after, audit: { ...audit, after: { status: to } } };
}

/** Ids of reserved orders whose reservation ran out by `now`, oldest first, skipping rows others hold. */
export async function dueForExpiry(trx: CommandTx, now: Date, limit: number): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT id FROM orders WHERE status = 'reserved' AND expires_at <= ${now}
     ORDER BY expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`.execute(trx);
  return rows.map((r) => r.id);
}
