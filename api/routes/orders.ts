/**
 * Orders: create (reserves stock), confirm, cancel, payment-failed, and reads. Customer contact is
 * encrypted before it reaches the database and shown only to roles allowed to read it. A location-limited
 * API key places, moves and reads only orders of its locations (orders carry customer contact).
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { isAllowed } from '../auth/permissions.ts';
import type { AppEnv, RouteDeps } from '../context.ts';
import { placeOrder } from '../domain/order-placement.ts';
import { readOrder, transitionOrder, type OrderView } from '../domain/orders.ts';
import type { TargetStatus } from '../domain/order-state.ts';
import { NotFound } from '../errors.ts';
import { assertLocationAllowed } from '../middleware/auth.ts';
import { commandMeta, executeCommand, protectedRoute, replayHeader } from './route-kit.ts';
import { IdempotencyHeader, jsonBody, jsonResponse, LocationCode, Order, Quantity, Sku } from './schemas.ts';

const CreateOrder = z
  .object({
    external_ref: z.string().trim().min(1).max(100).optional(),
    location: LocationCode.optional(),
    lines: z.array(z.object({ sku: Sku, qty: Quantity })).min(1).max(100),
    customer: z
      .object({ email: z.string().email().max(254).optional(), phone: z.string().regex(/^\+?[0-9 ()-]{5,30}$/).optional() })
      .optional(),
    ttl_seconds: z.number().int().min(5).max(7 * 24 * 3600).optional(),
  })
  .openapi('CreateOrder');

const OrderId = z.object({ id: z.string().uuid() });

const createRoute = protectedRoute('orders:write', {
  method: 'post',
  path: '/orders',
  summary: 'Place an order: reserve every line (bundles expand, lots FEFO) or fail with insufficient_stock',
  request: { ...jsonBody(CreateOrder), headers: IdempotencyHeader },
  responses: { 201: jsonResponse('reserved', Order) },
});

const getRoute = protectedRoute('orders:read', {
  method: 'get',
  path: '/orders/{id}',
  summary: 'Read an order with its lines and reservations',
  request: { params: OrderId },
  responses: { 200: jsonResponse('the order', Order) },
});

const ListQuery = z.object({
  status: z.enum(['reserved', 'confirmed', 'cancelled', 'payment_failed', 'expired']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

const listRoute = protectedRoute('orders:read', {
  method: 'get',
  path: '/orders',
  summary: 'Recent orders, newest first',
  request: { query: ListQuery },
  responses: { 200: jsonResponse('orders', z.object({ orders: z.array(Order.omit({ lines: true, reservations: true })) })) },
});

function transitionRoute(path: string, summary: string) {
  return protectedRoute('orders:write', {
    method: 'post',
    path: `/orders/{id}/${path}`,
    summary,
    request: { params: OrderId, headers: IdempotencyHeader },
    responses: { 200: jsonResponse('the order after the transition (a replay returns it unchanged)', Order) },
  });
}

const TRANSITIONS: { path: string; to: TargetStatus; summary: string }[] = [
  { path: 'confirm', to: 'confirmed', summary: 'Confirm: the reserved units leave stock (on hand and reserved drop)' },
  { path: 'cancel', to: 'cancelled', summary: 'Cancel: release the reservation' },
  { path: 'payment-failed', to: 'payment_failed', summary: 'Payment failed: release the reservation' },
];

export function ordersRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  function withContact(view: OrderView, sealed: string | null, roles: readonly string[]) {
    if (!sealed || !isAllowed(roles, 'orders:read-contact')) return view;
    return { ...view, customer: JSON.parse(deps.cipher.decrypt(sealed)) as { email?: string; phone?: string } };
  }

  /** A location-limited key may only move orders placed at its locations (an unknown id stays a 404). */
  async function assertOrderAllowed(c: Context<AppEnv>, id: string) {
    if (!c.get('principal').locations) return;
    const row = await deps.db.selectFrom('orders').select('location').where('id', '=', id).executeTakeFirst();
    if (row) assertLocationAllowed(c, row.location);
  }

  app.openapi(createRoute, async (c) => {
    const body = c.req.valid('json');
    const location = body.location ?? deps.settings.defaultLocation;
    assertLocationAllowed(c, location);
    const contact = body.customer && (body.customer.email || body.customer.phone) ? deps.cipher.encrypt(JSON.stringify(body.customer)) : null;
    const result = await placeOrder(
      { run: deps.prepared, runCommand: deps.runCommand, onRefused: (code) => deps.metrics.reservations.inc({ outcome: code === 'insufficient_stock' ? code : 'refused' }) },
      commandMeta(c, body),
      { actor: c.get('principal').subject, requestId: c.get('requestId'), now: deps.clock() },
      {
        location,
        externalRef: body.external_ref,
        lines: body.lines,
        customerContact: contact,
        ttlSeconds: body.ttl_seconds ?? deps.settings.reservationTtlSeconds,
      },
    );
    replayHeader(c, result);
    deps.metrics.reservations.inc({ outcome: result.replayed ? 'replayed' : 'reserved' });
    c.get('log').info({ orderId: result.body.id, replayed: result.replayed }, 'order reserved');
    return c.json(result.body, 201);
  });

  for (const t of TRANSITIONS) {
    app.openapi(transitionRoute(t.path, t.summary), async (c) => {
      const { id } = c.req.valid('param');
      await assertOrderAllowed(c, id);
      const result = await executeCommand(c, deps, { id, to: t.to }, (ctx) => transitionOrder(ctx, id, t.to));
      c.get('log').info({ orderId: id, status: result.body.status }, 'order transition');
      return c.json(result.body, 200);
    });
  }

  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid('param');
    const found = await readOrder(deps.db, id);
    if (!found) throw new NotFound('order', id);
    assertLocationAllowed(c, found.row.location);
    return c.json(withContact(found.view, found.row.customer_contact, c.get('principal').roles), 200);
  });

  app.openapi(listRoute, async (c) => {
    const q = c.req.valid('query');
    let query = deps.db
      .selectFrom('orders')
      .select(['id', 'external_ref', 'status', 'location', 'expires_at', 'version', 'created_at', 'updated_at'])
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .limit(q.limit);
    if (q.status) query = query.where('status', '=', q.status);
    const scope = c.get('principal').locations;
    if (scope) query = query.where('location', 'in', [...scope]);
    const rows = await query.execute();
    return c.json({
      orders: rows.map((r) => ({
        ...r,
        version: Number(r.version),
        expires_at: new Date(r.expires_at).toISOString(),
        created_at: new Date(r.created_at).toISOString(),
        updated_at: new Date(r.updated_at).toISOString(),
      })),
    }, 200);
  });

  return app;
}
