/**
 * The live dashboard, served by the API itself: GET /dashboard (public) is one static page (plain JS and
 * CSS from api/dashboard/, no build step, a strict Content-Security-Policy: scripts and styles from this
 * origin only, no inline script); the page then calls the API with the bearer token its user gave it.
 * Why in the API: same origin and auth as the API, no extra process; its live feed
 * (GET /v1/dashboard/events, Server-Sent Events) is an ephemeral ordered JetStream consumer (no ack state,
 * nothing to clean up), so it reads the same stream the projectors do — one consumer per API process,
 * fanned out to every open page (api/read-models/live-feed.ts).
 * GET /v1/dashboard/stock is the page's table: stock per location with name, reorder point and nearest expiry.
 */
import { readFileSync } from 'node:fs';
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { Hono, type Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { sql } from 'kysely';
import type { AppEnv, RouteDeps } from '../context.ts';
import { dayOf } from '../domain/orders.ts';
import { ApiError } from '../errors.ts';
import type { LiveSignal } from '../read-models/live-feed.ts';
import { protectedRoute } from './route-kit.ts';
import { jsonResponse, LocationCode, Sku } from './schemas.ts';

const PAGE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');
const EXPIRY_WARNING_DAYS = 30;
/** an SSE client this many chunks behind is cut off (it reconnects and reloads) rather than buffered without bound */
const MAX_BACKLOG = 1000;

const asset = (name: string) => readFileSync(new URL(`../dashboard/${name}`, import.meta.url), 'utf8');

/** The page's files (a fixed list: nothing else under api/dashboard/ is reachable) and their content types. */
const ASSETS: Record<string, string> = {
  'dashboard.js': 'text/javascript; charset=utf-8',
  'chart.js': 'text/javascript; charset=utf-8',
  'sse.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/** GET /dashboard and its scripts and style sheet: public, static, read once at start-up. */
export function dashboardPage() {
  const html = asset('index.html');
  const files = new Map(Object.entries(ASSETS).map(([name, type]) => [name, { body: asset(name), type }]));
  const app = new Hono<AppEnv>();
  const page = (c: Context<AppEnv>) =>
    c.body(html, 200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP, 'cache-control': 'no-cache' });
  app.get('/dashboard', page);
  app.get('/dashboard/', page);
  app.get('/dashboard/:file', (c, next) => {
    const file = files.get(c.req.param('file'));
    if (!file) return next(); // → the app's 404
    return c.body(file.body, 200, { 'content-type': file.type, 'cache-control': 'no-cache' });
  });
  return app;
}

const DashboardRow = z.object({
  sku: z.string(), name: z.string(), location: z.string(), on_hand: z.number().int(), reserved: z.number().int(), available: z.number().int(),
  reorder_point: z.number().int(), low: z.boolean().openapi({ description: 'available < reorder point' }),
  nearest_expiry: z.string().nullable().openapi({ description: 'earliest expiry of a lot still holding stock' }),
  expiry: z.enum(['expired', 'expiring']).nullable().openapi({ description: `expired, or expiring within ${EXPIRY_WARNING_DAYS} days` }),
  version: z.number().int(),
}).openapi('DashboardStockRow');

const routes = {
  stock: protectedRoute('dashboard:read', {
    method: 'get', path: '/dashboard/stock', summary: 'Stock per location with name, reorder point and nearest expiry (the dashboard table)',
    request: { query: z.object({ location: LocationCode.optional(), sku: Sku.optional(), limit: z.coerce.number().int().min(1).max(5000).default(2000) }) },
    responses: { 200: jsonResponse('stock rows and the server\'s today', z.object({ today: z.string(), stock: z.array(DashboardRow) })) },
  }),
  events: protectedRoute('dashboard:read', {
    method: 'get', path: '/dashboard/events',
    summary: 'Live changes as Server-Sent Events (send Accept: text/event-stream): `ready` once subscribed, then `change` per stock, lot, order or product change; a comment every 15 s',
    responses: {
      200: { description: 'an endless text/event-stream', content: { 'text/event-stream': { schema: z.string() } } },
      406: { description: 'the request does not accept text/event-stream' },
      503: { description: 'live_updates_unavailable: NATS is not configured or not reachable; poll the read endpoints' },
    },
  }),
};

interface StockDbRow {
  sku: string; name: string; location: string; on_hand: number; reserved: number; reorder_point: number; nearest_expiry: string | null; version: string;
}

/** One SSE frame; `data` is JSON on one line. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function dashboardRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.stock, async (c) => {
    const q = c.req.valid('query');
    const today = dayOf(deps.clock());
    const soon = dayOf(new Date(deps.clock().getTime() + EXPIRY_WARNING_DAYS * 86_400_000));
    const { rows } = await sql<StockDbRow>`
      SELECT s.sku, p.name, s.location, s.on_hand, s.reserved, p.reorder_point, s.version,
             (SELECT min(l.expires_on)::text FROM lots l WHERE l.sku = s.sku AND l.location = s.location AND l.on_hand > 0) AS nearest_expiry
        FROM stock_levels s JOIN products p ON p.sku = s.sku
       WHERE (${q.location ?? null}::text IS NULL OR s.location = ${q.location ?? null})
         AND (${q.sku ?? null}::text IS NULL OR s.sku = ${q.sku ?? null})
       ORDER BY s.location, s.sku
       LIMIT ${q.limit}`.execute(deps.db);
    const stock = rows.map((r) => ({
      sku: r.sku, name: r.name, location: r.location, on_hand: r.on_hand, reserved: r.reserved, available: r.on_hand - r.reserved,
      reorder_point: r.reorder_point, low: r.on_hand - r.reserved < r.reorder_point, nearest_expiry: r.nearest_expiry,
      // a lot expiring today is no longer sellable (the stock routes' rule), so it counts as expired
      expiry: r.nearest_expiry === null ? null : r.nearest_expiry <= today ? 'expired' as const : r.nearest_expiry <= soon ? 'expiring' as const : null,
      version: Number(r.version),
    }));
    return c.json({ today, stock }, 200);
  });

  app.openapi(routes.events, async (c) => {
    // an endless stream only for clients that asked for one: anything else gets a prompt answer, not a hang
    if (!/\btext\/event-stream\b/.test(c.req.header('accept') ?? '')) {
      throw new HTTPException(406, { message: 'this endpoint is a Server-Sent Events stream: send Accept: text/event-stream' });
    }
    const feed = deps.liveFeed;
    if (!feed?.available()) {
      c.header('Retry-After', '30');
      throw new ApiError(503, 'live_updates_unavailable', feed
        ? 'NATS is not reachable right now: poll the read endpoints and retry later'
        : 'live updates need NATS (NATS_URL) on this API process: poll the read endpoints instead');
    }
    const encoder = new TextEncoder();
    const signal = c.req.raw.signal;
    let release = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let open = true;
        let heartbeat: NodeJS.Timeout | undefined;
        let unsubscribe = () => {};
        release = () => {
          clearInterval(heartbeat);
          unsubscribe();
          signal.removeEventListener('abort', close);
        };
        function close() {
          if (!open) return;
          open = false;
          release();
          try { controller.close(); } catch { /* already cancelled */ }
        }
        const send = (text: string) => {
          if (!open) return;
          if ((controller.desiredSize ?? 0) < -MAX_BACKLOG) return close();
          controller.enqueue(encoder.encode(text));
        };
        // the first bytes go out at once, so the client sees the headers without waiting for a change
        send('retry: 5000\n: connected\n\n');
        signal.addEventListener('abort', close);
        heartbeat = setInterval(() => send(': heartbeat\n\n'), feed.heartbeatMs);
        unsubscribe = feed.subscribe((s: LiveSignal) => {
          if (s.type === 'change') send(frame('change', s.change));
          else if (s.type === 'ready') send(frame('ready', { at: new Date().toISOString() }));
          else close();
        });
        if (!open) release();
      },
      cancel() {
        release();
      },
    }, new CountQueuingStrategy({ highWaterMark: 16 }));
    return c.body(body, 200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
  });

  return app;
}
