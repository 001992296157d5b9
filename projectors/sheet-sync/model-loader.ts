/**
 * The engine's starting picture, read once from Postgres in one read-only, repeatable-read transaction
 * (one consistent snapshot). From then on the model follows the change stream; events older than the
 * snapshot are recognised by version and change nothing.
 */
import pg from 'pg';
import type { ModelSnapshot } from './workbook-model.ts';

export async function loadModelSnapshot(pool: pg.Pool): Promise<ModelSnapshot> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const locations = await client.query<{ code: string }>('SELECT code FROM locations ORDER BY code');
    const products = await client.query(
      'SELECT sku, name, category, kind, lot_tracked, reorder_point, version::int AS version FROM products');
    const stock = await client.query(
      'SELECT sku, location, on_hand, reserved, version::int AS version, updated_at FROM stock_levels');
    const lots = await client.query(
      `SELECT id::text AS id, sku, location, lot_code, expires_on::text AS expires_on, on_hand, reserved, version::int AS version
         FROM lots WHERE on_hand > 0 OR reserved > 0`);
    const components = await client.query('SELECT bundle_sku, component_sku, qty FROM bundle_components');
    await client.query('COMMIT');
    return {
      locations: locations.rows.map((r) => r.code),
      products: products.rows,
      stock: stock.rows.map((r) => ({ ...r, updated_at: (r.updated_at as Date).toISOString() })),
      lots: lots.rows,
      components: components.rows,
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
