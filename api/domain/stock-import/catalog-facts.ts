/**
 * Loads what the validator needs to know about an import's rows in three queries, whatever the number
 * of rows: the products named, the locations named, and the lots named.
 */
import { sql } from 'kysely';
import type { CommandTx } from '../command-runner.ts';
import { lotKey, type CatalogFacts, type CountRow } from './row-validator.ts';

export async function loadCatalogFacts(trx: CommandTx, rows: readonly CountRow[]): Promise<CatalogFacts> {
  const skus = [...new Set(rows.map((r) => r.sku))];
  const locations = [...new Set(rows.map((r) => r.location))];
  const lotRows = rows.filter((r) => r.lot_code);
  // one after the other: a transaction is one connection
  const products = await sql<{ sku: string; kind: 'simple' | 'bundle'; lot_tracked: boolean }>`
      SELECT sku, kind, lot_tracked FROM products WHERE sku = ANY(${skus}::text[])`.execute(trx);
  const places = await sql<{ code: string }>`SELECT code FROM locations WHERE code = ANY(${locations}::text[])`.execute(trx);
  const lots = await sql<{ id: string; sku: string; location: string; lot_code: string }>`
      SELECT l.id, l.sku, l.location, l.lot_code FROM lots l
        JOIN unnest(${lotRows.map((r) => r.sku)}::text[], ${lotRows.map((r) => r.location)}::text[], ${lotRows.map((r) => r.lot_code!)}::text[])
             AS t(sku, location, lot_code) USING (sku, location, lot_code)`.execute(trx);
  return {
    products: new Map(products.rows.map((p) => [p.sku, { kind: p.kind, lot_tracked: p.lot_tracked }])),
    locations: new Set(places.rows.map((l) => l.code)),
    lots: new Map(lots.rows.map((l) => [lotKey(l.sku, l.location, l.lot_code), String(l.id)])),
  };
}
