/**
 * Placing an order: reserve every line (bundles expand to components, lot-tracked components are picked
 * FEFO from sellable lots) or fail with InsufficientStock listing every short component.
 *
 * Fast path (placeOrder): read the catalog, stock and lots without locks, allocate in memory, then write
 * in ONE autocommit statement that locks the stock rows (sku order) and the picked lots, re-checks the
 * allocation against the locked rows, and inserts order, lines, reservations, ledger rows, audit row and
 * stored answer only if the check holds. Rows stay locked for that one statement only — not for several
 * client round trips — which is what keeps throughput up on hot SKUs. A failed check (someone took the
 * stock in between) re-reads and retries; after a few tries the locking transaction (createOrder) decides.
 */
import { randomUUID } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';
import { InsufficientStock } from '../errors.ts';
import { catalogFromRows, catalogRowsQuery, loadCatalog, type CatalogRow } from './catalog-lookup.ts';
import { inTransaction, type SqlRunner } from '../../db/sql-runner.ts';
import { Unprocessable } from '../errors.ts';
import type { CommandMeta, CommandOutcome, CommandResult, RunCommand } from './command-runner.ts';
import type { PickableLot } from './fefo-picker.ts';
import { allocateOrder, componentSkus, type CatalogEntry, type OrderLineRequest, type ReservationPick } from './order-allocation.ts';
import { dayOf, type Ctx, type NewOrder, type OrderView } from './orders.ts';

const OPTIMISTIC_ATTEMPTS = 4;

interface StockSnapshot {
  available: Map<string, number>;
  lots: Map<string, PickableLot[]>;
}

interface PlacementPlan {
  id: string;
  lines: OrderLineRequest[];
  picks: ReservationPick[];
  outcome: CommandOutcome<OrderView>;
}

function numberLines(input: NewOrder): OrderLineRequest[] {
  return input.lines.map((l, i) => ({ lineNo: i + 1, sku: l.sku, qty: l.qty }));
}

/** Free units per component and their sellable lots (FEFO order); `lock` takes the stock rows first. */
async function readStock(run: SqlRunner, location: string, skus: string[], catalog: Map<string, CatalogEntry>, today: string, lock: boolean): Promise<StockSnapshot> {
  const levels = await run(sql<{ sku: string; free: number }>`
    SELECT sku, on_hand - reserved AS free FROM stock_levels
     WHERE location = ${location} AND sku = ANY(${skus}::text[])
     ORDER BY sku ${lock ? sql`FOR UPDATE` : sql``}`);
  const available = new Map(levels.map((r) => [r.sku, r.free]));
  const lotSkus = skus.filter((s) => catalog.get(s)?.lotTracked && available.has(s));
  const lots = new Map<string, PickableLot[]>();
  if (lotSkus.length) {
    // under `lock` this runs after the stock rows are locked, so it sees every committed change to their lots
    const rows = await run(sql<{ id: string; sku: string; expires_on: string; free: number }>`
      SELECT id, sku, expires_on, on_hand - reserved AS free FROM lots
       WHERE location = ${location} AND sku = ANY(${lotSkus}::text[]) AND expires_on > ${today}::date AND on_hand > reserved
       ORDER BY sku, expires_on, id`);
    for (const r of rows) {
      const list = lots.get(r.sku) ?? [];
      list.push({ id: r.id, expiresOn: r.expires_on, available: r.free });
      lots.set(r.sku, list);
    }
  }
  return { available, lots };
}

function plan(ctx: Pick<Ctx, 'now'>, input: NewOrder, lines: OrderLineRequest[], catalog: Map<string, CatalogEntry>, stock: StockSnapshot): PlacementPlan {
  const allocation = allocateOrder({ location: input.location, today: dayOf(ctx.now), lines, catalog, ...stock });
  if (!allocation.ok) throw new InsufficientStock(allocation.short);
  const id = randomUUID();
  const expiresAt = new Date(ctx.now.getTime() + input.ttlSeconds * 1000);
  const view: OrderView = {
    id,
    external_ref: input.externalRef ?? null,
    status: 'reserved',
    location: input.location,
    expires_at: expiresAt.toISOString(),
    version: 1,
    created_at: ctx.now.toISOString(),
    updated_at: ctx.now.toISOString(),
    lines: lines.map((l) => ({ line_no: l.lineNo, sku: l.sku, qty: l.qty })),
    reservations: allocation.picks.map((p) => ({ line_no: p.lineNo, sku: p.sku, lot_id: p.lotId, qty: p.qty })),
  };
  return { id, lines, picks: allocation.picks, outcome: { status: 201, body: view, audit: { action: 'order.create', entity: 'order', entityId: id, after: view } } };
}

/** CTEs inserting the order, its lines, reservations and ledger rows; `gate` (SQL boolean) guards them all. */
function insertCtes(ctx: Omit<Ctx, 'trx'>, input: NewOrder, p: PlacementPlan, gate: RawBuilder<unknown>) {
  const { id, lines, picks } = p;
  const view = p.outcome.body;
  return sql`
    new_order AS (
      INSERT INTO orders (id, external_ref, status, location, expires_at, customer_contact, created_by, created_at, updated_at)
      SELECT ${id}::uuid, ${input.externalRef ?? null}, 'reserved', ${input.location}, ${view.expires_at}::timestamptz,
             ${input.customerContact ?? null}, ${ctx.actor}, ${ctx.now}, ${ctx.now}
       WHERE ${gate}
      RETURNING id
    ), new_lines AS (
      INSERT INTO order_lines (order_id, line_no, sku, qty)
      SELECT o.id, l.line_no, l.sku, l.qty
        FROM new_order o,
             unnest(${lines.map((l) => l.lineNo)}::int[], ${lines.map((l) => l.sku)}::text[], ${lines.map((l) => l.qty)}::int[]) AS l(line_no, sku, qty)
    ), picks AS (
      SELECT * FROM unnest(${picks.map((x) => x.lineNo)}::int[], ${picks.map((x) => x.sku)}::text[],
                           ${picks.map((x) => x.lotId)}::bigint[], ${picks.map((x) => x.qty)}::int[])
             WITH ORDINALITY AS p(line_no, sku, lot_id, qty, n)
    ), new_reservations AS (
      INSERT INTO reservations (order_id, line_no, sku, location, lot_id, qty)
      SELECT o.id, p.line_no, p.sku, ${input.location}, p.lot_id, p.qty FROM new_order o, picks p ORDER BY p.n
    ), new_movements AS (
      INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, order_id, actor, request_id)
      SELECT p.sku, ${input.location}, p.lot_id, 0, p.qty, 'reservation', o.id, ${ctx.actor}, ${ctx.requestId}
        FROM new_order o, picks p ORDER BY p.sku, p.n
    )`;
}

/**
 * The first optimistic attempt's reads in ONE statement (saves two round trips on the hottest path):
 * whether the location exists, the catalog rows of the lines, the free units of every component at the
 * location and the sellable lots of the lot-tracked ones — the same rows loadOrderCatalog and
 * readStock(lock = false) read, aggregated as JSON into one row. Same checks and errors as those two.
 */
async function readOrderSnapshot(run: SqlRunner, location: string, lines: OrderLineRequest[], today: string) {
  const [row] = await run(sql<{ known: boolean; catalog: CatalogRow[]; levels: [string, number][]; lots: [string, string, string, number][] }>`
    WITH catalog AS (${catalogRowsQuery(lines.map((l) => l.sku))}),
    components AS (
      SELECT CASE WHEN kind = 'bundle' THEN component_sku ELSE sku END AS sku,
             CASE WHEN kind = 'bundle' THEN component_lot_tracked ELSE lot_tracked END AS lot_tracked
        FROM catalog
    )
    SELECT EXISTS (SELECT 1 FROM locations WHERE code = ${location}) AS known,
           (SELECT coalesce(json_agg(catalog), '[]') FROM catalog) AS catalog,
           (SELECT coalesce(json_agg(json_build_array(sku, on_hand - reserved)), '[]') FROM stock_levels
             WHERE location = ${location} AND sku IN (SELECT sku FROM components)) AS levels,
           (SELECT coalesce(json_agg(json_build_array(id::text, sku, expires_on, on_hand - reserved) ORDER BY sku, expires_on, id), '[]') FROM lots
             WHERE location = ${location} AND sku IN (SELECT sku FROM components WHERE lot_tracked)
               AND expires_on > ${today}::date AND on_hand > reserved) AS lots`);
  if (!row?.known) throw new Unprocessable('unknown_location', `no such location: ${location}`, { location });
  const catalog = catalogFromRows(row.catalog, lines.map((l) => l.sku));
  const skus = componentSkus(lines, catalog);
  const available = new Map(row.levels.filter(([sku]) => skus.includes(sku)));
  const lots = new Map<string, PickableLot[]>();
  for (const [id, sku, expiresOn, free] of row.lots) {
    if (!catalog.get(sku)?.lotTracked || !available.has(sku)) continue;
    lots.set(sku, [...(lots.get(sku) ?? []), { id, expiresOn, available: free }]);
  }
  return { catalog, skus, stock: { available, lots } satisfies StockSnapshot };
}

/** The catalog entries of the order's lines; 422 for an unknown location or unusable product. */
async function loadOrderCatalog(run: SqlRunner, location: string, lines: OrderLineRequest[]) {
  const [known] = await run(sql<{ known: boolean }>`SELECT EXISTS (SELECT 1 FROM locations WHERE code = ${location}) AS known`);
  if (!known?.known) throw new Unprocessable('unknown_location', `no such location: ${location}`, { location });
  return loadCatalog(run, lines.map((l) => l.sku));
}

/** Reserves inside the caller's transaction, locking first (the decisive path). */
export async function createOrder(ctx: Ctx, input: NewOrder): Promise<CommandOutcome<OrderView>> {
  const run = inTransaction(ctx.trx);
  const lines = numberLines(input);
  const catalog = await loadOrderCatalog(run, input.location, lines);
  const stock = await readStock(run, input.location, componentSkus(lines, catalog), catalog, dayOf(ctx.now), true);
  const p = plan(ctx, input, lines, catalog, stock);
  const rows = await run(sql<{ id: string }>`WITH ${insertCtes(ctx, input, p, sql`true`)} SELECT id FROM new_order`);
  if (rows.length !== 1) throw new Error('order insert returned no row');
  return p.outcome;
}

function needsOf(picks: ReservationPick[]) {
  const bySku = new Map<string, number>();
  const byLot = new Map<string, number>();
  for (const p of picks) {
    bySku.set(p.sku, (bySku.get(p.sku) ?? 0) + p.qty);
    if (p.lotId) byLot.set(p.lotId, (byLot.get(p.lotId) ?? 0) + p.qty);
  }
  const skus = [...bySku.keys()].sort();
  const lots = [...byLot.keys()].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  return { skus, skuQty: skus.map((s) => bySku.get(s)!), lots, lotQty: lots.map((l) => byLot.get(l)!) };
}

/** Places an order: optimistic single-statement attempts, then the locking transaction. */
export async function placeOrder(
  deps: { run: SqlRunner; runCommand: RunCommand; onRefused?: (code: string) => void },
  meta: CommandMeta,
  ctx: Omit<Ctx, 'trx'>,
  input: NewOrder,
): Promise<CommandResult<OrderView>> {
  try {
    return await placeOrderAttempts(deps, meta, ctx, input);
  } catch (err) {
    deps.onRefused?.((err as { code?: string }).code ?? 'error');
    throw err;
  }
}

async function placeOrderAttempts(
  deps: { run: SqlRunner; runCommand: RunCommand },
  meta: CommandMeta,
  ctx: Omit<Ctx, 'trx'>,
  input: NewOrder,
): Promise<CommandResult<OrderView>> {
  const lines = numberLines(input);
  const today = dayOf(ctx.now);
  const snapshot = await readOrderSnapshot(deps.run, input.location, lines, today);
  const { catalog, skus } = snapshot;

  for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
    const stock = attempt === 0 ? snapshot.stock : await readStock(deps.run, input.location, skus, catalog, today, false);
    const p = plan(ctx, input, lines, catalog, stock); // throws InsufficientStock when the snapshot is short
    const n = needsOf(p.picks);
    const result = await deps.runCommand.statement<OrderView>(meta, async (recordCtes) => {
      const rows = await deps.run(sql<{ placed: boolean }>`
        WITH locked AS (
          SELECT sku, on_hand - reserved AS free FROM stock_levels
           WHERE location = ${input.location} AND sku = ANY(${n.skus}::text[])
           ORDER BY sku FOR UPDATE
        ), locked_lots AS (
          -- lots after their stock rows (the subquery forces that order): the global lock order
          SELECT id, on_hand - reserved AS free, expires_on FROM lots
           WHERE id = ANY(${n.lots}::bigint[]) AND (SELECT count(*) FROM locked) > 0
           ORDER BY id FOR UPDATE
        ), verdict AS (
          SELECT (SELECT count(*) FROM locked l JOIN unnest(${n.skus}::text[], ${n.skuQty}::int[]) AS need(sku, qty)
                    ON need.sku = l.sku AND l.free >= need.qty) = ${n.skus.length}
             AND (SELECT count(*) FROM locked_lots l JOIN unnest(${n.lots}::bigint[], ${n.lotQty}::int[]) AS need(id, qty)
                    ON need.id = l.id AND l.free >= need.qty AND l.expires_on > ${today}::date) = ${n.lots.length} AS ok
        ), ${insertCtes(ctx, input, p, sql`(SELECT ok FROM verdict)`)}, ${recordCtes(p.outcome, 'new_order')}
        SELECT EXISTS (SELECT 1 FROM new_order) AS placed`);
      return rows[0]?.placed ? p.outcome : undefined;
    });
    if (result) return result;
  }
  return deps.runCommand(meta, (trx) => createOrder({ ...ctx, trx }, input));
}
