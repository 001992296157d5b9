/**
 * The demo catalog the embedded default starts with: 2 locations, 30 products across sheets, linens and
 * beauty (beauty lot-tracked, with expiry dates and one expired lot), and 3 bundles. Seeding is
 * idempotent: products and locations are inserted when missing, and opening stock is booked through the
 * ledger only for (sku, location) pairs that have no movements yet.
 */
import { sql, type Kysely } from 'kysely';
import type { Category, Database } from '../db/schema.ts';
import type { RunCommand } from '../api/domain/command-runner.ts';
import { receiveStock } from '../api/domain/stock-commands.ts';

const LOCATIONS = [
  { code: 'MAIN', name: 'Main warehouse' },
  { code: 'SHOP', name: 'High Street shop' },
];

interface DemoProduct {
  sku: string;
  name: string;
  category: Exclude<Category, 'bundle'>;
  reorder_point: number;
  reorder_qty: number;
  stock: [main: number, shop: number];
}

const sheets: DemoProduct[] = ['SINGLE', 'DOUBLE', 'QUEEN', 'KING', 'SUPERKING'].flatMap((size, i) =>
  (['WHITE', 'GREY'] as const).map((colour, j) => ({
    sku: `SHEET-${size}-${colour}`,
    name: `Fitted sheet ${size.toLowerCase()} ${colour.toLowerCase()}, 400 thread count`,
    category: 'sheets' as const,
    reorder_point: 10,
    reorder_qty: 40,
    stock: [60 - i * 8 - j * 5, 12 - i - j] as [number, number],
  })));

const linens: DemoProduct[] = [
  ['PILLOWCASE-PAIR-WHITE', 'Pillowcase pair, white cotton'],
  ['PILLOWCASE-PAIR-GREY', 'Pillowcase pair, grey cotton'],
  ['DUVET-COVER-DOUBLE', 'Duvet cover, double, linen'],
  ['DUVET-COVER-KING', 'Duvet cover, king, linen'],
  ['TOWEL-BATH-WHITE', 'Bath towel, white, 600 gsm'],
  ['TOWEL-HAND-WHITE', 'Hand towel, white, 600 gsm'],
  ['TABLECLOTH-LINEN-180', 'Linen tablecloth, 180 cm'],
  ['NAPKIN-SET-6', 'Linen napkins, set of 6'],
  ['THROW-WAFFLE-OAT', 'Waffle throw, oat'],
  ['BEDSPREAD-QUILTED-KING', 'Quilted bedspread, king'],
].map(([sku, name], i) => ({ sku: sku!, name: name!, category: 'linens' as const, reorder_point: 8, reorder_qty: 30, stock: [45 - i * 3, 10 - (i % 4)] as [number, number] }));

const beauty: DemoProduct[] = [
  ['CREAM-HAND-50ML', 'Shea hand cream, 50 ml'],
  ['CREAM-NIGHT-50ML', 'Night cream, 50 ml'],
  ['SERUM-VITC-30ML', 'Vitamin C serum, 30 ml'],
  ['LOTION-BODY-200ML', 'Body lotion, 200 ml'],
  ['BALM-LIP-10G', 'Lip balm, 10 g'],
  ['MASK-CLAY-75ML', 'Clay face mask, 75 ml'],
  ['MIST-PILLOW-100ML', 'Lavender pillow mist, 100 ml'],
  ['SOAP-LAVENDER-100G', 'Lavender soap, 100 g'],
  ['SCRUB-SUGAR-200G', 'Sugar body scrub, 200 g'],
  ['TONER-ROSE-150ML', 'Rose toner, 150 ml'],
].map(([sku, name], i) => ({ sku: sku!, name: name!, category: 'beauty' as const, reorder_point: 6, reorder_qty: 24, stock: [30 - i * 2, 8 - (i % 3)] as [number, number] }));

const BUNDLES = [
  { sku: 'BUNDLE-SLEEP-QUEEN', name: 'Sleep set: queen sheet + pillow mist', components: [{ sku: 'SHEET-QUEEN-WHITE', qty: 1 }, { sku: 'MIST-PILLOW-100ML', qty: 1 }] },
  { sku: 'BUNDLE-SPA', name: 'Spa set: bath towel, body lotion, soap', components: [{ sku: 'TOWEL-BATH-WHITE', qty: 1 }, { sku: 'LOTION-BODY-200ML', qty: 1 }, { sku: 'SOAP-LAVENDER-100G', qty: 2 }] },
  { sku: 'BUNDLE-GUEST-DOUBLE', name: 'Guest room set: double sheet, pillowcases, hand cream', components: [{ sku: 'SHEET-DOUBLE-WHITE', qty: 1 }, { sku: 'PILLOWCASE-PAIR-WHITE', qty: 1 }, { sku: 'CREAM-HAND-50ML', qty: 1 }] },
];

export const DEMO_PRODUCTS = [...sheets, ...linens, ...beauty];
export const DEMO_BUNDLES = BUNDLES;
/** The lot that is already past its expiry date when seeded. */
export const EXPIRED_LOT = { sku: 'CREAM-HAND-50ML', location: 'MAIN', lot_code: 'L-EXPIRED-01', qty: 5, daysAgo: 10 };

function addDays(today: Date, days: number): string {
  return new Date(today.getTime() + days * 86_400_000).toISOString().slice(0, 10);
}

/** Seeds the demo catalog and opening stock; safe to run on every start. Returns what it created. */
export async function seedDemoCatalog(props: { db: Kysely<Database>; runCommand: RunCommand; clock?: () => Date }) {
  const { db, runCommand } = props;
  const now = props.clock?.() ?? new Date();
  await db.insertInto('locations').values(LOCATIONS).onConflict((oc) => oc.column('code').doNothing()).execute();
  const products = await db.insertInto('products')
    .values([
      ...DEMO_PRODUCTS.map((p) => ({ sku: p.sku, name: p.name, category: p.category, kind: 'simple' as const, lot_tracked: p.category === 'beauty', reorder_point: p.reorder_point, reorder_qty: p.reorder_qty })),
      ...BUNDLES.map((b) => ({ sku: b.sku, name: b.name, category: 'bundle' as const, kind: 'bundle' as const, lot_tracked: false, reorder_point: 0, reorder_qty: 0 })),
    ])
    .onConflict((oc) => oc.column('sku').doNothing())
    .returning('sku')
    .execute();
  await db.insertInto('bundle_components')
    .values(BUNDLES.flatMap((b) => b.components.map((c) => ({ bundle_sku: b.sku, component_sku: c.sku, qty: c.qty }))))
    .onConflict((oc) => oc.columns(['bundle_sku', 'component_sku']).doNothing())
    .execute();

  const stocked = new Set((await sql<{ k: string }>`SELECT DISTINCT sku || '@' || location AS k FROM stock_movements`.execute(db)).rows.map((r) => r.k));
  let receipts = 0;
  for (const p of DEMO_PRODUCTS) {
    for (const [i, location] of ['MAIN', 'SHOP'].entries()) {
      const qty = p.stock[i as 0 | 1];
      if (qty <= 0 || stocked.has(`${p.sku}@${location}`)) continue;
      // beauty items arrive in two lots with different expiries, so FEFO has something to choose
      const parts = p.category === 'beauty'
        ? [{ qty: Math.ceil(qty / 3), lot: `L${location}-A`, expires: addDays(now, 45 + i * 10) }, { qty: qty - Math.ceil(qty / 3), lot: `L${location}-B`, expires: addDays(now, 240) }]
        : [{ qty, lot: undefined, expires: undefined }];
      for (const part of parts.filter((x) => x.qty > 0)) {
        const requestId = `seed-${p.sku}-${location}-${part.lot ?? 'all'}`;
        await runCommand({ actor: 'seed', requestId }, (trx) => receiveStock({ trx, actor: 'seed', requestId, now }, {
          sku: p.sku, location, qty: part.qty, lot_code: part.lot, expires_on: part.expires, ref: 'opening stock',
        }));
        receipts += 1;
      }
    }
  }
  await seedExpiredLot(db, now);
  return { products: products.length, receipts };
}

/** An old lot that has since expired: booked through the ledger as a receipt dated before its expiry. */
async function seedExpiredLot(db: Kysely<Database>, now: Date) {
  const e = EXPIRED_LOT;
  const expires = addDays(now, -e.daysAgo);
  await db.transaction().execute(async (trx) => {
    await sql`INSERT INTO stock_levels (sku, location) VALUES (${e.sku}, ${e.location}) ON CONFLICT DO NOTHING`.execute(trx);
    const lot = await sql<{ id: string }>`
      INSERT INTO lots (sku, location, lot_code, expires_on) VALUES (${e.sku}, ${e.location}, ${e.lot_code}, ${expires}::date)
      ON CONFLICT (sku, location, lot_code) DO NOTHING RETURNING id`.execute(trx);
    const lotId = lot.rows[0]?.id;
    if (!lotId) return; // already seeded
    await sql`INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, ref, actor, created_at)
              VALUES (${e.sku}, ${e.location}, ${lotId}, ${e.qty}, 0, 'receipt', 'opening stock', 'seed', ${addDays(now, -e.daysAgo - 90)}::timestamptz)`.execute(trx);
    await sql`INSERT INTO audit_log (actor, action, entity, entity_id, after)
              VALUES ('seed', 'stock.receive', 'stock', ${`${e.sku}@${e.location}`}, ${JSON.stringify({ lot_code: e.lot_code, qty: e.qty, expires_on: expires })})`.execute(trx);
  });
}
