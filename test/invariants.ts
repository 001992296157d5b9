/**
 * The ledger invariants, checked with SQL after any sequence of commands: balances equal the sum of the
 * ledger, lot-tracked levels equal the sum of their lots, reserved equals what open orders hold, and no
 * quantity is negative or over-reserved. Returns the violations (empty when all hold).
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export async function ledgerViolations(db: Kysely<Database>): Promise<string[]> {
  const checks: [string, ReturnType<typeof sql>][] = [
    ['stock level differs from ledger sum', sql`
      SELECT s.sku, s.location, s.on_hand, s.reserved, coalesce(m.on_hand, 0) AS ledger_on_hand, coalesce(m.reserved, 0) AS ledger_reserved
        FROM stock_levels s
        LEFT JOIN (SELECT sku, location, sum(delta_on_hand) AS on_hand, sum(delta_reserved) AS reserved
                     FROM stock_movements GROUP BY sku, location) m USING (sku, location)
       WHERE s.on_hand <> coalesce(m.on_hand, 0) OR s.reserved <> coalesce(m.reserved, 0)`],
    ['lot differs from ledger sum', sql`
      SELECT l.id, l.on_hand, l.reserved FROM lots l
        LEFT JOIN (SELECT lot_id, sum(delta_on_hand) AS on_hand, sum(delta_reserved) AS reserved
                     FROM stock_movements WHERE lot_id IS NOT NULL GROUP BY lot_id) m ON m.lot_id = l.id
       WHERE l.on_hand <> coalesce(m.on_hand, 0) OR l.reserved <> coalesce(m.reserved, 0)`],
    ['lot-tracked level differs from its lots', sql`
      SELECT s.sku, s.location, s.on_hand, s.reserved FROM stock_levels s JOIN products p ON p.sku = s.sku AND p.lot_tracked
        LEFT JOIN (SELECT sku, location, sum(on_hand) AS on_hand, sum(reserved) AS reserved FROM lots GROUP BY sku, location) l
               ON l.sku = s.sku AND l.location = s.location
       WHERE s.on_hand <> coalesce(l.on_hand, 0) OR s.reserved <> coalesce(l.reserved, 0)`],
    ['reserved differs from open reservations', sql`
      SELECT s.sku, s.location, s.reserved, coalesce(r.qty, 0) AS held FROM stock_levels s
        LEFT JOIN (SELECT r.sku, r.location, sum(r.qty) AS qty FROM reservations r JOIN orders o ON o.id = r.order_id
                    WHERE o.status = 'reserved' GROUP BY r.sku, r.location) r USING (sku, location)
       WHERE s.reserved <> coalesce(r.qty, 0)`],
    ['negative or over-reserved quantity', sql`
      SELECT sku, location FROM stock_levels WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand
      UNION ALL SELECT sku, location FROM lots WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand`],
  ];
  const violations: string[] = [];
  for (const [name, query] of checks) {
    const { rows } = await query.execute(db);
    for (const row of rows) violations.push(`${name}: ${JSON.stringify(row)}`);
  }
  return violations;
}
