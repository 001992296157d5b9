/**
 * Stock: adjustments, receipts and transfers (all commands with a reason on the ledger), and reads of
 * stock levels, lots and movements. Sellable quantity excludes expired lots; bundles show the units
 * their components allow. A location-limited API key may change stock only at its locations (a transfer:
 * both ends); reads stay unrestricted — stock levels hold no personal data and sheet-sync needs them all.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppEnv, RouteDeps } from '../context.ts';
import { bundleAvailability } from '../domain/bundle-availability.ts';
import { dayOf } from '../domain/orders.ts';
import { adjustStock, receiveStock, transferStock } from '../domain/stock-commands.ts';
import { readStockRow } from '../domain/stock-rows.ts';
import { NotFound } from '../errors.ts';
import { assertLocationAllowed } from '../middleware/auth.ts';
import { executeCommand, protectedRoute } from './route-kit.ts';
import { IdempotencyHeader, IsoDate, jsonBody, jsonResponse, LocationCode, LotCode, Note, Quantity, Reason, Sku, StockChange, StockRow } from './schemas.ts';

const Adjustment = z
  .object({
    sku: Sku,
    location: LocationCode,
    lot_code: LotCode.optional(),
    delta: z.number().int().min(-1_000_000).max(1_000_000).refine((d) => d !== 0, 'delta must not be 0').optional(),
    counted: z.number().int().min(0).max(1_000_000).optional(),
    reason: Reason,
    note: Note.optional(),
    expected_version: z.number().int().min(0).optional().openapi({ description: 'refuse with 409 version_conflict unless the stock row still has this version' }),
  })
  .refine((a) => (a.delta === undefined) !== (a.counted === undefined), { message: 'give exactly one of delta or counted', path: ['delta'] })
  .openapi('Adjustment');

const Receipt = z
  .object({
    sku: Sku,
    location: LocationCode,
    qty: Quantity,
    lot_code: LotCode.optional(),
    expires_on: IsoDate.optional(),
    ref: z.string().trim().min(1).max(100).optional().openapi({ description: 'purchase order or delivery note' }),
    note: Note.optional(),
  })
  .openapi('Receipt');

const Transfer = z
  .object({ sku: Sku, from: LocationCode, to: LocationCode, qty: Quantity, lot_code: LotCode.optional(), note: Note.optional() })
  .openapi('Transfer');

const TransferResult = z.object({ transfer_id: z.string(), from: StockChange, to: StockChange }).openapi('TransferResult');

const SellableRow = StockRow.extend({ sellable: z.number().int().openapi({ description: 'available excluding expired lots' }) });

const StockQuery = z.object({ location: LocationCode.optional(), sku: Sku.optional(), category: z.enum(['sheets', 'linens', 'beauty']).optional() });

const SkuStock = z.object({
  sku: z.string(),
  kind: z.enum(['simple', 'bundle']),
  levels: z.array(SellableRow),
  lots: z.array(z.object({ id: z.string(), location: z.string(), lot_code: z.string(), expires_on: z.string(), on_hand: z.number().int(), reserved: z.number().int(), expired: z.boolean() })),
  bundle_availability: z.array(z.object({ location: z.string(), available: z.number().int() })).optional(),
}).openapi('SkuStock');

const Movement = z.object({
  id: z.string(), sku: z.string(), location: z.string(), lot_id: z.string().nullable(), delta_on_hand: z.number().int(),
  delta_reserved: z.number().int(), reason: z.string(), cause: z.string().nullable(), order_id: z.string().nullable(),
  ref: z.string().nullable(), actor: z.string(), note: z.string().nullable(), created_at: z.string(),
}).openapi('Movement');

const MovementQuery = z.object({
  sku: Sku.optional(),
  location: LocationCode.optional(),
  order_id: z.string().uuid().optional(),
  before_id: z.coerce.number().int().positive().optional().openapi({ description: 'page cursor: movements older than this id' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const routes = {
  adjust: protectedRoute('stock:adjust', {
    method: 'post', path: '/adjustments', summary: 'Adjust stock by a delta or to a counted quantity (reason required)',
    request: { ...jsonBody(Adjustment), headers: IdempotencyHeader }, responses: { 200: jsonResponse('the stock row after the change', StockChange) },
  }),
  receive: protectedRoute('stock:receive', {
    method: 'post', path: '/receipts', summary: 'Book received goods (lot code and expiry for lot-tracked products)',
    request: { ...jsonBody(Receipt), headers: IdempotencyHeader }, responses: { 201: jsonResponse('the stock row after the receipt', StockChange) },
  }),
  transfer: protectedRoute('stock:transfer', {
    method: 'post', path: '/transfers', summary: 'Move unreserved units between locations',
    request: { ...jsonBody(Transfer), headers: IdempotencyHeader }, responses: { 201: jsonResponse('both stock rows after the transfer', TransferResult) },
  }),
  list: protectedRoute('stock:read', {
    method: 'get', path: '/stock', summary: 'Stock levels per (sku, location)',
    request: { query: StockQuery }, responses: { 200: jsonResponse('stock rows', z.object({ stock: z.array(SellableRow) })) },
  }),
  one: protectedRoute('stock:read', {
    method: 'get', path: '/stock/{sku}', summary: 'One product: levels per location, lots, and bundle availability',
    request: { params: z.object({ sku: Sku }) }, responses: { 200: jsonResponse('stock of one product', SkuStock) },
  }),
  cached: protectedRoute('stock:read', {
    method: 'get', path: '/stock/{sku}/{location}',
    summary: 'One stock row, from the Redis projection when it has applied min_lsn (waits briefly), else from Postgres',
    request: {
      params: z.object({ sku: Sku, location: LocationCode }),
      query: z.object({ min_lsn: z.string().regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/).optional().openapi({ description: 'X-Stockwire-LSN of your write' }) }),
    },
    responses: { 200: jsonResponse('the stock row (X-Stockwire-Source: cache | database)', StockRow.partial({ updated_at: true })) },
  }),
  movements: protectedRoute('movements:read', {
    method: 'get', path: '/movements', summary: 'The stock ledger, newest first',
    request: { query: MovementQuery }, responses: { 200: jsonResponse('ledger rows', z.object({ movements: z.array(Movement), next_before_id: z.string().nullable() })) },
  }),
};

interface SellableDbRow {
  sku: string; location: string; on_hand: number; reserved: number; version: string; updated_at: Date; sellable: number;
}

export function stockRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.adjust, async (c) => {
    const body = c.req.valid('json');
    assertLocationAllowed(c, body.location);
    const result = await executeCommand(c, deps, body, (ctx) => adjustStock(ctx, body));
    return c.json(result.body, 200);
  });

  app.openapi(routes.receive, async (c) => {
    const body = c.req.valid('json');
    assertLocationAllowed(c, body.location);
    const result = await executeCommand(c, deps, body, (ctx) => receiveStock(ctx, body));
    return c.json(result.body, 201);
  });

  app.openapi(routes.transfer, async (c) => {
    const body = c.req.valid('json');
    assertLocationAllowed(c, body.from);
    assertLocationAllowed(c, body.to);
    const result = await executeCommand(c, deps, body, (ctx) => transferStock(ctx, body));
    return c.json(result.body, 201);
  });

  async function sellableRows(filter: { location?: string | undefined; sku?: string | undefined; skus?: string[]; category?: string | undefined }) {
    const today = dayOf(deps.clock());
    const { rows } = await sql<SellableDbRow>`
      SELECT s.sku, s.location, s.on_hand, s.reserved, s.version, s.updated_at,
             CASE WHEN p.lot_tracked THEN LEAST(s.on_hand - s.reserved, coalesce((
               SELECT sum(l.on_hand - l.reserved) FROM lots l
                WHERE l.sku = s.sku AND l.location = s.location AND l.expires_on > ${today}::date), 0))::int
             ELSE s.on_hand - s.reserved END AS sellable
        FROM stock_levels s JOIN products p ON p.sku = s.sku
       WHERE (${filter.location ?? null}::text IS NULL OR s.location = ${filter.location ?? null})
         AND (${filter.sku ?? null}::text IS NULL OR s.sku = ${filter.sku ?? null})
         AND (${filter.skus ?? null}::text[] IS NULL OR s.sku = ANY(${filter.skus ?? null}::text[]))
         AND (${filter.category ?? null}::text IS NULL OR p.category = ${filter.category ?? null})
       ORDER BY s.sku, s.location`.execute(deps.db);
    return rows.map((r) => ({
      sku: r.sku, location: r.location, on_hand: r.on_hand, reserved: r.reserved, available: r.on_hand - r.reserved,
      sellable: r.sellable, version: Number(r.version), updated_at: r.updated_at.toISOString(),
    }));
  }

  app.openapi(routes.list, async (c) => c.json({ stock: await sellableRows(c.req.valid('query')) }, 200));

  app.openapi(routes.one, async (c) => {
    const { sku } = c.req.valid('param');
    const product = await deps.db.selectFrom('products').select(['sku', 'kind']).where('sku', '=', sku).executeTakeFirst();
    if (!product) throw new NotFound('product', sku);
    const today = dayOf(deps.clock());
    if (product.kind === 'bundle') {
      const components = await deps.db.selectFrom('bundle_components').select(['component_sku as sku', 'qty']).where('bundle_sku', '=', sku).execute();
      const levels = await sellableRows({ skus: components.map((comp) => comp.sku) });
      const locations = [...new Set(levels.map((l) => l.location))].sort();
      const bundle_availability = locations.map((location) => ({
        location,
        available: bundleAvailability(components, new Map(levels.filter((l) => l.location === location).map((l) => [l.sku, l.sellable]))),
      }));
      return c.json({ sku, kind: 'bundle' as const, levels: [], lots: [], bundle_availability }, 200);
    }
    const lots = await deps.db.selectFrom('lots').select(['id', 'location', 'lot_code', 'expires_on', 'on_hand', 'reserved'])
      .where('sku', '=', sku).orderBy('location').orderBy('expires_on').orderBy('id').execute();
    return c.json({
      sku, kind: 'simple' as const, levels: await sellableRows({ sku }),
      lots: lots.map((l) => ({ ...l, expired: l.expires_on <= today })),
    }, 200);
  });

  app.openapi(routes.cached, async (c) => {
    const { sku, location } = c.req.valid('param');
    const { min_lsn } = c.req.valid('query');
    const cached = await deps.cache?.read(sku, location, min_lsn, deps.settings.readWaitMs ?? 2000);
    if (cached) {
      c.header('X-Stockwire-Source', 'cache');
      return c.json(cached, 200);
    }
    c.header('X-Stockwire-Source', 'database');
    const row = await readStockRow(deps.db, { sku, location });
    if (!row) throw new NotFound('stock row', `${sku}@${location}`);
    return c.json(row, 200);
  });

  app.openapi(routes.movements, async (c) => {
    const q = c.req.valid('query');
    let query = deps.db.selectFrom('stock_movements')
      .select(['id', 'sku', 'location', 'lot_id', 'delta_on_hand', 'delta_reserved', 'reason', 'cause', 'order_id', 'ref', 'actor', 'note', 'created_at'])
      .orderBy('id', 'desc').limit(q.limit);
    if (q.sku) query = query.where('sku', '=', q.sku);
    if (q.location) query = query.where('location', '=', q.location);
    if (q.order_id) query = query.where('order_id', '=', q.order_id);
    if (q.before_id) query = query.where('id', '<', String(q.before_id));
    const rows = await query.execute();
    const movements = rows.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() }));
    const last = movements.length === q.limit ? movements[movements.length - 1]!.id : null;
    return c.json({ movements, next_before_id: last }, 200);
  });

  return app;
}
