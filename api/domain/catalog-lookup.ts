/**
 * Reads what a command needs to know about products: kind, lot tracking and bundle components. Unknown,
 * inactive or empty-bundle products are refused here, before any stock row is locked.
 */
import { sql } from 'kysely';
import type { SqlRunner } from '../../db/sql-runner.ts';
import { Unprocessable } from '../errors.ts';
import type { CatalogEntry } from './order-allocation.ts';

export interface CatalogRow {
  sku: string;
  kind: 'simple' | 'bundle';
  lot_tracked: boolean;
  active: boolean;
  component_sku: string | null;
  component_qty: number | null;
  component_lot_tracked: boolean | null;
  component_active: boolean | null;
}

/** The catalog rows of `skus` (bundles joined to their components), as a query others can embed. */
export function catalogRowsQuery(skus: readonly string[]) {
  return sql<CatalogRow>`
    SELECT p.sku, p.kind, p.lot_tracked, p.active,
           bc.component_sku, bc.qty AS component_qty, c.lot_tracked AS component_lot_tracked, c.active AS component_active
      FROM products p
      LEFT JOIN bundle_components bc ON bc.bundle_sku = p.sku
      LEFT JOIN products c ON c.sku = bc.component_sku
     WHERE p.sku = ANY(${[...new Set(skus)]}::text[])`;
}

/** Loads `skus` and, for bundles, their components; throws 422 for unknown or inactive products. */
export async function loadCatalog(run: SqlRunner, skus: readonly string[]): Promise<Map<string, CatalogEntry>> {
  return catalogFromRows(await run(catalogRowsQuery(skus)), skus);
}

/** The catalog entries of `skus` from their rows; throws 422 for unknown or inactive products. */
export function catalogFromRows(rows: readonly CatalogRow[], skus: readonly string[]): Map<string, CatalogEntry> {
  const catalog = new Map<string, CatalogEntry>();
  const inactive = new Set<string>();
  for (const row of rows) {
    if (!row.active) inactive.add(row.sku);
    let entry = catalog.get(row.sku);
    if (!entry) {
      entry = { sku: row.sku, kind: row.kind, lotTracked: row.lot_tracked, ...(row.kind === 'bundle' ? { components: [] } : {}) };
      catalog.set(row.sku, entry);
    }
    if (row.component_sku && row.component_active === false) inactive.add(row.component_sku);
    if (row.component_sku && row.component_qty) {
      entry.components!.push({ sku: row.component_sku, qty: row.component_qty });
      if (!catalog.has(row.component_sku)) {
        catalog.set(row.component_sku, { sku: row.component_sku, kind: 'simple', lotTracked: row.component_lot_tracked ?? false });
      }
    }
  }
  const unknown = skus.filter((s) => !catalog.has(s));
  if (unknown.length) throw new Unprocessable('unknown_sku', `no such product: ${unknown.join(', ')}`, { skus: unknown });
  if (inactive.size) throw new Unprocessable('product_inactive', `product no longer sold: ${[...inactive].join(', ')}`, { skus: [...inactive] });
  const empty = [...catalog.values()].filter((e) => e.kind === 'bundle' && e.components!.length === 0).map((e) => e.sku);
  if (empty.length) throw new Unprocessable('bundle_empty', `bundle has no components: ${empty.join(', ')}`, { skus: empty });
  return catalog;
}
