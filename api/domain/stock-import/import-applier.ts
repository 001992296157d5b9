/**
 * Applies a validated stock count as ledger rows, in the caller's transaction. The stock rows are locked
 * in (sku, location) order first (lockStockRows), so the counts are compared with quantities nobody can
 * change until commit; each row's delta is counted − on hand (of the lot, for lot rows), rows whose
 * delta is 0 write nothing, and a count below what open orders reserve is a row error. Ledger rows are
 * inserted in a few large INSERT … SELECT FROM unnest statements (the trigger moves the balances).
 * A dry run reads the same quantities without locking or writing.
 */
import { sql } from 'kysely';
import type { CommandTx } from '../command-runner.ts';
import { appendMovements } from '../stock-commands.ts';
import { keyOf, lockStockRows } from '../stock-rows.ts';
import type { RowError } from './import-errors.ts';
import { lotKey, type CatalogFacts, type CountRow } from './row-validator.ts';

const INSERT_BATCH = 5_000;

interface Held {
  on_hand: number;
  reserved: number;
}

export interface CountPlan {
  movements: { sku: string; location: string; lotId: string | null; deltaOnHand: number; note: string | null }[];
  unchanged: number;
  errors: RowError[];
}

/** Pure: the movement each row needs, given what is held now. */
export function planCounts(rows: readonly CountRow[], facts: CatalogFacts, levels: ReadonlyMap<string, Held>, lots: ReadonlyMap<string, Held>): CountPlan {
  const plan: CountPlan = { movements: [], unchanged: 0, errors: [] };
  for (const r of rows) {
    const lotId = r.lot_code ? facts.lots.get(lotKey(r.sku, r.location, r.lot_code))! : null;
    const held = (lotId ? lots.get(lotId) : levels.get(keyOf(r))) ?? { on_hand: 0, reserved: 0 };
    if (r.counted < held.reserved) {
      plan.errors.push({
        row: r.row, column: 'counted', code: 'below_reserved',
        message: `counted ${r.counted}, but open orders reserve ${held.reserved} of ${r.sku} at ${r.location}${r.lot_code ? ` lot ${r.lot_code}` : ''}; release or fulfil them first`,
      });
      continue;
    }
    const delta = r.counted - held.on_hand;
    if (delta === 0) plan.unchanged++;
    else plan.movements.push({ sku: r.sku, location: r.location, lotId, deltaOnHand: delta, note: r.note ?? null });
  }
  return plan;
}

async function readLevels(trx: CommandTx, rows: readonly CountRow[], lock: boolean): Promise<Map<string, Held>> {
  const unique = new Map(rows.map((r) => [keyOf(r), { sku: r.sku, location: r.location }]));
  const keys = [...unique.values()];
  if (lock) return lockStockRows(trx, keys, true);
  const { rows: found } = await sql<Held & { sku: string; location: string }>`
    SELECT sku, location, on_hand, reserved FROM stock_levels
     WHERE (sku, location) IN (SELECT * FROM unnest(${keys.map((k) => k.sku)}::text[], ${keys.map((k) => k.location)}::text[]))`.execute(trx);
  return new Map(found.map((r) => [keyOf(r), r]));
}

async function readLots(trx: CommandTx, ids: readonly string[]): Promise<Map<string, Held>> {
  if (ids.length === 0) return new Map();
  // lots change only under their stock row's lock, which the caller holds (or, in a dry run, a snapshot)
  const { rows } = await sql<Held & { id: string }>`
    SELECT id, on_hand, reserved FROM lots WHERE id = ANY(${ids}::bigint[])`.execute(trx);
  return new Map(rows.map((r) => [String(r.id), r]));
}

export interface ApplyProps {
  trx: CommandTx;
  rows: readonly CountRow[];
  facts: CatalogFacts;
  /** false: read and plan only (dry run) */
  write: boolean;
  importId: string;
  actor: string;
  requestId: string;
  now: Date;
}

/** Plans the count and, when `write` and there are no row errors, appends the ledger rows. */
export async function applyCounts(props: ApplyProps): Promise<CountPlan> {
  const { trx, rows, facts } = props;
  const levels = await readLevels(trx, rows, props.write);
  const lotIds = [...new Set(rows.flatMap((r) => (r.lot_code ? [facts.lots.get(lotKey(r.sku, r.location, r.lot_code))!] : [])))];
  const lots = await readLots(trx, lotIds);
  const plan = planCounts(rows, facts, levels, lots);
  if (!props.write || plan.errors.length > 0) return plan;
  const ctx = { trx, actor: props.actor, requestId: props.requestId, now: props.now };
  for (let i = 0; i < plan.movements.length; i += INSERT_BATCH) {
    await appendMovements(ctx, plan.movements.slice(i, i + INSERT_BATCH).map((m) => ({ ...m, reason: 'import' as const, ref: props.importId })));
  }
  return plan;
}
