/**
 * Outbound webhook endpoints (admin only, action webhooks:manage): register (the signing secret,
 * whsec_ + base64 of 32 random bytes as Standard Webhooks has it, is in that one answer and nowhere
 * else in clear — not in the audit row or an idempotency record; the database holds it sealed with the
 * PII cipher, because the sender must be able to use it), list (never a secret), delete, re-enable one
 * the worker disabled, list its dead letters and replay one.
 *
 * The webhooks projector does the sending; this module only writes the two webhook tables. Times that
 * the delivery worker compares (next_attempt_at) are the database's now(), the clock the worker uses.
 * URLs must be https unless WEBHOOKS_ALLOW_HTTP=true (local receivers, tests).
 */
import { randomUUID } from 'node:crypto';
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { sql, type Selectable } from 'kysely';
import type { WebhookDeliveriesTable, WebhookEndpointsTable } from '../../db/schema.ts';
import { parseEnv } from '../../lib/env-config.ts';
import { generateWebhookSecret } from '../../projectors/webhooks/signature.ts';
import { WEBHOOK_EVENT_TYPES } from '../../projectors/webhooks/webhook-events.ts';
import type { AppEnv, RouteDeps } from '../context.ts';
import type { CommandTx } from '../domain/command-runner.ts';
import { ApiError, NotFound } from '../errors.ts';
import { executeCommand, protectedRoute, refuseIdempotencyKey } from './route-kit.ts';
import { jsonBody, jsonResponse } from './schemas.ts';

/** The API's webhook settings (read with the rest of its configuration at start-up). */
export const webhookApiConfig = z.object({
  WEBHOOKS_ALLOW_HTTP: z.enum(['true', 'false']).default('false').describe('accept http:// webhook URLs (local receivers, tests); otherwise https only'),
});

const EventType = z.enum(['*', ...WEBHOOK_EVENT_TYPES]).openapi({ description: 'a webhook event type, or * for all' });

const CreateWebhook = z
  .object({
    url: z.string().trim().max(2048).url().openapi({ example: 'https://shop.example/hooks/stockwire' }),
    event_types: z.array(EventType).min(1).max(WEBHOOK_EVENT_TYPES.length + 1),
  })
  .openapi('CreateWebhook');

const WebhookEndpoint = z
  .object({
    id: z.string().uuid(),
    url: z.string(),
    event_types: z.array(z.string()),
    status: z.enum(['active', 'disabled']),
    disabled_reason: z.string().nullable(),
    disabled_at: z.string().nullable(),
    failing_since: z.string().nullable(),
    created_by: z.string(),
    created_at: z.string(),
  })
  .openapi('WebhookEndpoint');

const ListedWebhook = WebhookEndpoint.extend({ pending: z.number().int(), dead: z.number().int() }).openapi('ListedWebhookEndpoint');

const IssuedWebhook = z
  .object({
    secret: z.string().openapi({ description: 'whsec_<base64>: the signing secret, shown in this answer only' }),
    webhook: WebhookEndpoint,
  })
  .openapi('IssuedWebhook');

const Delivery = z
  .object({
    id: z.string(),
    endpoint_id: z.string().uuid(),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(['pending', 'delivered', 'dead']),
    attempts: z.number().int(),
    first_attempt_at: z.string().nullable(),
    next_attempt_at: z.string(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
    payload: z.unknown(),
  })
  .openapi('WebhookDelivery');

const EndpointId = z.object({ id: z.string().uuid() });
const DeliveryParams = EndpointId.extend({ delivery_id: z.string().regex(/^[1-9][0-9]{0,17}$/, 'a delivery id') });
const DeadLetterQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z.string().regex(/^[1-9][0-9]{0,17}$/).optional().openapi({ description: 'page: dead letters older than this delivery id' }),
});

const routes = {
  create: protectedRoute('webhooks:manage', {
    method: 'post', path: '/webhooks', summary: 'Register a webhook endpoint (its signing secret is shown once, in this answer)',
    request: jsonBody(CreateWebhook), responses: { 201: jsonResponse('the secret and the endpoint', IssuedWebhook) },
  }),
  list: protectedRoute('webhooks:manage', {
    method: 'get', path: '/webhooks', summary: 'Webhook endpoints with their pending and dead counts (never their secrets)',
    responses: { 200: jsonResponse('endpoints, newest first', z.object({ webhooks: z.array(ListedWebhook) })) },
  }),
  remove: protectedRoute('webhooks:manage', {
    method: 'delete', path: '/webhooks/{id}', summary: 'Delete an endpoint and its queued and dead deliveries',
    request: { params: EndpointId }, responses: { 200: jsonResponse('the deleted endpoint', WebhookEndpoint) },
  }),
  enable: protectedRoute('webhooks:manage', {
    method: 'post', path: '/webhooks/{id}/enable', summary: 'Re-enable an endpoint; its queued deliveries are sent again, in order',
    request: { params: EndpointId }, responses: { 200: jsonResponse('the endpoint', WebhookEndpoint) },
  }),
  deadLetters: protectedRoute('webhooks:manage', {
    method: 'get', path: '/webhooks/{id}/dead-letters', summary: 'Deliveries that ran out of retries, newest first',
    request: { params: EndpointId, query: DeadLetterQuery },
    responses: { 200: jsonResponse('dead letters', z.object({ dead_letters: z.array(Delivery), next_before: z.string().nullable() })) },
  }),
  replay: protectedRoute('webhooks:manage', {
    method: 'post', path: '/webhooks/{id}/dead-letters/{delivery_id}/replay', summary: 'Queue a dead letter again (attempts reset); it goes before newer deliveries',
    request: { params: DeliveryParams }, responses: { 200: jsonResponse('the delivery, pending again', Delivery) },
  }),
};

type EndpointRow = Omit<Selectable<WebhookEndpointsTable>, 'secret'>;
/** every column but secret: nothing read here can leak it */
const PUBLIC_COLUMNS = ['id', 'url', 'event_types', 'status', 'disabled_reason', 'disabled_at', 'failing_since', 'created_by', 'created_at'] as const;
const DELIVERY_COLUMNS = [
  'id', 'endpoint_id', 'event_id', 'event_type', 'status', 'attempts', 'first_attempt_at', 'next_attempt_at', 'last_error', 'created_at', 'delivered_at', 'payload',
] as const;

export function webhookRoutes(deps: RouteDeps, options: { allowHttp?: boolean } = {}) {
  const allowHttp = options.allowHttp ?? parseEnv(webhookApiConfig).WEBHOOKS_ALLOW_HTTP === 'true';
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.create, async (c) => {
    const body = c.req.valid('json');
    refuseIdempotencyKey(c, 'delete any endpoint whose answer you lost');
    const url = checkUrl(body.url, allowHttp);
    const result = await executeCommand(c, deps, body, async (ctx) => {
      const secret = generateWebhookSecret();
      const row = await ctx.trx.insertInto('webhook_endpoints').values({
        id: randomUUID(),
        url,
        event_types: [...new Set(body.event_types)],
        secret: deps.cipher.encrypt(secret),
        created_by: ctx.actor,
        created_at: ctx.now,
      }).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow();
      const webhook = view(row);
      // the audit row records the endpoint, never the secret
      return { status: 201 as const, body: { secret, webhook }, audit: { action: 'webhook.create', entity: 'webhook_endpoint', entityId: webhook.id, after: webhook } };
    });
    return c.json(result.body, 201);
  });

  app.openapi(routes.list, async (c) => {
    const rows = await deps.db.selectFrom('webhook_endpoints as e').select(PUBLIC_COLUMNS.map((col) => `e.${col}` as const))
      .select((eb) => [
        eb.selectFrom('webhook_deliveries as d').select((d) => d.fn.countAll<string>().as('n')).whereRef('d.endpoint_id', '=', 'e.id').where('d.status', '=', 'pending').as('pending'),
        eb.selectFrom('webhook_deliveries as d').select((d) => d.fn.countAll<string>().as('n')).whereRef('d.endpoint_id', '=', 'e.id').where('d.status', '=', 'dead').as('dead'),
      ])
      .orderBy('e.created_at', 'desc').orderBy('e.id').execute();
    return c.json({ webhooks: rows.map((r) => ({ ...view(r), pending: Number(r.pending ?? 0), dead: Number(r.dead ?? 0) })) }, 200);
  });

  app.openapi(routes.remove, async (c) => {
    const { id } = c.req.valid('param');
    const result = await executeCommand(c, deps, { id }, async (ctx) => {
      const before = view(await lockEndpoint(ctx.trx, id));
      await ctx.trx.deleteFrom('webhook_endpoints').where('id', '=', id).execute();
      return { status: 200 as const, body: before, audit: { action: 'webhook.delete', entity: 'webhook_endpoint', entityId: id, before } };
    });
    return c.json(result.body, 200);
  });

  app.openapi(routes.enable, async (c) => {
    const { id } = c.req.valid('param');
    const result = await executeCommand(c, deps, { id }, async (ctx) => {
      const before = view(await lockEndpoint(ctx.trx, id));
      const row = await ctx.trx.updateTable('webhook_endpoints')
        .set({ status: 'active', disabled_reason: null, disabled_at: null, failing_since: null })
        .where('id', '=', id).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow();
      // what waited while the endpoint was disabled starts a fresh retry window now, in the same order
      await ctx.trx.updateTable('webhook_deliveries').set({ first_attempt_at: null, next_attempt_at: sql<Date>`now()` })
        .where('endpoint_id', '=', id).where('status', '=', 'pending').execute();
      const after = view(row);
      return { status: 200 as const, body: after, audit: { action: 'webhook.enable', entity: 'webhook_endpoint', entityId: id, before, after } };
    });
    return c.json(result.body, 200);
  });

  app.openapi(routes.deadLetters, async (c) => {
    const { id } = c.req.valid('param');
    const { limit, before } = c.req.valid('query');
    const endpoint = await deps.db.selectFrom('webhook_endpoints').select('id').where('id', '=', id).executeTakeFirst();
    if (!endpoint) throw new NotFound('webhook endpoint', id);
    let query = deps.db.selectFrom('webhook_deliveries').select(DELIVERY_COLUMNS).where('endpoint_id', '=', id).where('status', '=', 'dead');
    if (before) query = query.where('id', '<', before);
    const rows = await query.orderBy('id', 'desc').limit(limit + 1).execute();
    const page = rows.slice(0, limit).map(deliveryView);
    return c.json({ dead_letters: page, next_before: rows.length > limit ? page[page.length - 1]!.id : null }, 200);
  });

  app.openapi(routes.replay, async (c) => {
    const { id, delivery_id: deliveryId } = c.req.valid('param');
    const result = await executeCommand(c, deps, { id, delivery_id: deliveryId }, async (ctx) => {
      const current = await ctx.trx.selectFrom('webhook_deliveries').select(DELIVERY_COLUMNS)
        .where('id', '=', deliveryId).where('endpoint_id', '=', id).forUpdate().executeTakeFirst();
      if (!current) throw new NotFound('webhook delivery', deliveryId);
      if (current.status !== 'dead') {
        throw new ApiError(409, 'not_dead', `delivery ${deliveryId} is ${current.status}; only a dead letter can be replayed`, { id: deliveryId, status: current.status });
      }
      const row = await ctx.trx.updateTable('webhook_deliveries')
        .set({ status: 'pending', attempts: 0, first_attempt_at: null, next_attempt_at: sql<Date>`now()`, last_error: null })
        .where('id', '=', deliveryId).returning(DELIVERY_COLUMNS).executeTakeFirstOrThrow();
      const summary = (d: typeof row) => ({ id: d.id, endpoint_id: d.endpoint_id, event_id: d.event_id, event_type: d.event_type, status: d.status, attempts: d.attempts, last_error: d.last_error });
      return {
        status: 200 as const, body: deliveryView(row),
        audit: { action: 'webhook.replay', entity: 'webhook_delivery', entityId: deliveryId, before: summary(current), after: summary(row) },
      };
    });
    return c.json(result.body, 200);
  });

  return app;
}

function checkUrl(text: string, allowHttp: boolean): string {
  const url = new URL(text);
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
    throw new ApiError(400, 'insecure_url', `webhook URLs must use https${allowHttp ? ' or http' : ' (WEBHOOKS_ALLOW_HTTP=true allows http for local receivers)'}`, { url: text });
  }
  if (url.username || url.password) {
    throw new ApiError(400, 'validation_failed', 'a webhook URL must not carry credentials (it is listed in clear); authenticate the sender by its signature', { url: `${url.protocol}//${url.host}${url.pathname}` });
  }
  url.hash = '';
  return url.toString();
}

async function lockEndpoint(trx: CommandTx, id: string): Promise<EndpointRow> {
  const row = await trx.selectFrom('webhook_endpoints').select(PUBLIC_COLUMNS).where('id', '=', id).forUpdate().executeTakeFirst();
  if (!row) throw new NotFound('webhook endpoint', id);
  return row;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

function view(row: EndpointRow) {
  return {
    id: row.id, url: row.url, event_types: row.event_types, status: row.status, disabled_reason: row.disabled_reason,
    disabled_at: iso(row.disabled_at), failing_since: iso(row.failing_since), created_by: row.created_by, created_at: new Date(row.created_at).toISOString(),
  };
}

function deliveryView(row: Pick<Selectable<WebhookDeliveriesTable>, (typeof DELIVERY_COLUMNS)[number]>) {
  return {
    id: row.id, endpoint_id: row.endpoint_id, event_id: row.event_id, event_type: row.event_type, status: row.status, attempts: row.attempts,
    first_attempt_at: iso(row.first_attempt_at), next_attempt_at: new Date(row.next_attempt_at).toISOString(), last_error: row.last_error,
    created_at: new Date(row.created_at).toISOString(), delivered_at: iso(row.delivered_at), payload: row.payload,
  };
}
