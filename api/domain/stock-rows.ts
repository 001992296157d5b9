/**
 * Locking and reading stock rows. Every command that changes stock locks the stock_levels rows it touches
 * in (sku, location) order before reading them; lots are only changed under their stock row's lock.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { Unprocessable } from '../errors.ts';
import type { CommandTx } from './command-runner.ts';

export interface StockKey {
  sku: string;
  location: string;
}

export interface StockRowView {
  sku: string;
  location: string;
  on_hand: number;
  reserved: number;
  available: number;
  version: number;
  updated_at: string;
}

interface StockRow {
  sku: string;
  location: string;
  on_hand: number;
  reserved: number;
  version: string;
  updated_at: Date;
}

export interface ProductFacts {
  sku: string;
  kind: 'simple' | 'bundle';
  lot_tracked: boolean;
  active: boolean;
}

function sortKeys(keys: readonly StockKey[]): StockKey[] {
  return [...keys].sort((a, b) => (a.sku === b.sku ? (a.location < b.location ? -1 : 1) : a.sku < b.sku ? -1 : 1));
}

/** Creates missing stock rows (at zero), then locks all of them in key order and returns them by key. */
export async function lockStockRows(trx: CommandTx, keys: readonly StockKey[], create: boolean): Promise<Map<string, StockRow>> {
  const sorted = sortKeys(keys);
  const skus = sorted.map((k) => k.sku);
  const locations = sorted.map((k) => k.location);
  if (create) {
    await sql`INSERT INTO stock_levels (sku, location)
              SELECT * FROM unnest(${skus}::text[], ${locations}::text[]) ORDER BY 1, 2
              ON CONFLICT DO NOTHING`.execute(trx);
  }
  const { rows } = await sql<StockRow>`
    SELECT sku, location, on_hand, reserved, version, updated_at FROM stock_levels
     WHERE (sku, location) IN (SELECT * FROM unnest(${skus}::text[], ${locations}::text[]))
     ORDER BY sku, location FOR UPDATE`.execute(trx);
  return new Map(rows.map((r) => [keyOf(r), r]));
}

/** Map key for a (sku, location). */
export function keyOf(k: StockKey): string {
  return `${k.sku}\u0000${k.location}`;
}

/** Re-reads stock rows after the ledger trigger changed them. */
export async function readStockRow(trx: Kysely<Database>, key: StockKey): Promise<StockRowView | undefined> {
  const row = await trx
    .selectFrom('stock_levels')
    .select(['sku', 'location', 'on_hand', 'reserved', 'version', 'updated_at'])
    .where('sku', '=', key.sku)
    .where('location', '=', key.location)
    .executeTakeFirst();
  return row ? toStockView(row as StockRow) : undefined;
}

export function toStockView(row: StockRow): StockRowView {
  return {
    sku: row.sku,
    location: row.location,
    on_hand: row.on_hand,
    reserved: row.reserved,
    available: row.on_hand - row.reserved,
    version: Number(row.version),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

/** Loads a product that holds stock of its own (not a bundle); 422 otherwise. */
export async function stockedProduct(trx: CommandTx, sku: string): Promise<ProductFacts> {
  const product = await trx.selectFrom('products').select(['sku', 'kind', 'lot_tracked', 'active']).where('sku', '=', sku).executeTakeFirst();
  if (!product) throw new Unprocessable('unknown_sku', `no such product: ${sku}`, { skus: [sku] });
  if (product.kind === 'bundle') {
    throw new Unprocessable('bundle_has_no_stock', `${sku} is a bundle; change the stock of its components instead`, { sku });
  }
  return product;
}

/** Fails with 422 unless `code` names an existing location. */
export async function assertLocation(trx: CommandTx, code: string): Promise<void> {
  const found = await trx.selectFrom('locations').select('code').where('code', '=', code).executeTakeFirst();
  if (!found) throw new Unprocessable('unknown_location', `no such location: ${code}`, { location: code });
}
