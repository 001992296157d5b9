/**
 * Builds the Hono application from its dependencies: request context, authentication, routes grouped by
 * resource under /v1, health probes, the OpenAPI 3.1 document, and one error renderer.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { sql } from 'kysely';
import { bodyLimit } from 'hono/body-limit';
import { except } from 'hono/combine';
import { cors } from 'hono/cors';
import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { HTTPException } from 'hono/http-exception';
import type { AppDeps, AppEnv, RouteDeps } from './context.ts';
import { preparedOn } from '../db/sql-runner.ts';
import { createCommandRunner } from './domain/command-runner.ts';
import { createApiMetrics } from './metrics.ts';
import { ApiError, databaseUnavailable } from './errors.ts';
import { authenticate } from './middleware/auth.ts';
import { createApiKeyVerifier } from './auth/api-key-verifier.ts';
import { idempotencyKey } from './middleware/idempotency-key.ts';
import { requestContext } from './middleware/request-context.ts';
import { adminNetwork, clientAddress, ipAllowlist } from './middleware/ip-allowlist.ts';
import { rateLimit } from './middleware/rate-limit.ts';
import { analyticsRoutes } from './routes/analytics.ts';
import { auditRoutes } from './routes/audit.ts';
import { dashboardPage, dashboardRoutes } from './routes/dashboard.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { importRoutes } from './routes/imports.ts';
import { ordersRoutes } from './routes/orders.ts';
import { productRoutes } from './routes/products.ts';
import { stockRoutes } from './routes/stock.ts';
import { syncRoutes } from './routes/sync.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { commitPosition } from './middleware/commit-position.ts';
import { HSTS_HEADER } from './tls.ts';

const MAX_JSON_BODY = 1024 * 1024;

/** How the app is reached (api/server.ts knows; in-process callers may leave it out). */
export interface TransportOptions {
  /** every response travels over TLS, so Strict-Transport-Security is sent (default true; the server passes false for plain HTTP) */
  hsts?: boolean;
  /** exact browser origins allowed cross-origin; empty or absent: no CORS headers at all */
  corsOrigins?: readonly string[];
}

/** CORS for the listed origins only: any other origin (preflight included) gets no CORS header and goes on to the routes. */
function corsForOrigins(origins: readonly string[]): MiddlewareHandler {
  const allowed = cors({
    origin: [...origins],
    credentials: false,
    allowMethods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-API-Key'],
    maxAge: 600,
  });
  return async function corsForOrigins(c, next) {
    const origin = c.req.header('origin');
    if (origin && origins.includes(origin)) return allowed(c, next);
    await next();
    // the answer depends on Origin: a cache must not hand this one to an allowed origin
    c.header('Vary', 'Origin', { append: true });
  };
}

export function createApp(deps: AppDeps & { transport?: TransportOptions }) {
  const metrics = deps.metrics ?? createApiMetrics();
  const routeDeps: RouteDeps = {
    ...deps,
    metrics,
    runCommand: createCommandRunner({ db: deps.db }),
    prepared: preparedOn(deps.pool, deps.db),
    validationHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
        throw new ApiError(400, 'validation_failed', `invalid ${result.target}: ${issues.map((i) => `${i.path || '(root)'} ${i.message}`).join('; ')}`, {
          target: result.target,
          issues,
        });
      }
    },
  };

  const app = new OpenAPIHono<AppEnv>({ defaultHook: routeDeps.validationHook });
  app.use('*', requestContext({ log: deps.log, metrics }));
  app.use('*', secureHeaders({ strictTransportSecurity: deps.transport?.hsts === false ? false : HSTS_HEADER }));
  if (deps.transport?.corsOrigins?.length) app.use('*', corsForOrigins(deps.transport.corsOrigins));
  app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await sql`SELECT 1`.execute(deps.db);
      return c.json({ status: 'ready' });
    } catch {
      return c.json({ status: 'unavailable', reason: 'database unreachable' }, 503);
    }
  });

  // the probes above are exempt from the allowlists and the budgets; everything below is the API proper
  app.use('*', clientAddress({ trustedProxies: deps.network?.trustedProxies }));
  app.use('*', ipAllowlist({ allowed: deps.network?.apiAllowed }));
  // per address before authentication, so a flood of bad tokens is refused before any verification
  if (deps.rateLimit) app.use('/v1/*', rateLimit({ limiter: deps.rateLimit.limiter, scope: 'ip', rule: deps.rateLimit.perIp }));

  // file uploads (POST /v1/imports) read their body after authorization, with their own file-size limit
  app.use('/v1/*', except('/v1/imports', bodyLimit({
    maxSize: MAX_JSON_BODY,
    onError: () => {
      throw new ApiError(413, 'body_too_large', `request body over ${MAX_JSON_BODY} bytes`);
    },
  })));
  app.use('/v1/*', authenticate({ verifyToken: deps.verifyToken, verifyApiKey: createApiKeyVerifier({ run: routeDeps.prepared, log: deps.log, clock: deps.clock }), trustedProxies: deps.network?.trustedProxies }));
  if (deps.rateLimit) app.use('/v1/*', rateLimit({ limiter: deps.rateLimit.limiter, scope: 'subject', rule: deps.rateLimit.perSubject }));
  app.use('/v1/*', adminNetwork({ allowed: deps.network?.adminAllowed }));
  app.use('/v1/*', idempotencyKey());
  app.use('/v1/*', commitPosition({ run: routeDeps.prepared }));
  app.route('/v1', ordersRoutes(routeDeps));
  app.route('/v1', stockRoutes(routeDeps));
  app.route('/v1', productRoutes(routeDeps));
  app.route('/v1', syncRoutes(routeDeps));
  app.route('/v1', importRoutes(routeDeps));
  app.route('/v1', apiKeyRoutes(routeDeps));
  app.route('/v1', webhookRoutes(routeDeps));
  app.route('/v1', auditRoutes(routeDeps));
  app.route('/v1', dashboardRoutes(routeDeps));
  // the page itself is public (it holds no data) but behind the same address allowlist as the API
  app.route('/', dashboardPage());
  app.route('/v1', analyticsRoutes(routeDeps));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'stockwire', version: '0.1.0', description: 'Inventory API: catalog, stock ledger, orders with reservations' },
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((err, c) => {
    if (err instanceof ApiError) {
      return c.json({ error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } }, err.status);
    }
    if (err instanceof HTTPException && err.status < 500) {
      const code = err.status === 400 ? 'malformed_request' : 'request_refused';
      return c.json({ error: { code, message: err.message || 'the request could not be read' } }, err.status);
    }
    const unavailable = databaseUnavailable(err);
    if (unavailable) {
      (c.get('log') ?? deps.log).warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'database unavailable');
      c.header('Retry-After', '1');
      return c.json({ error: { code: unavailable.code, message: unavailable.message, details: { request_id: c.get('requestId') } } }, 503);
    }
    (c.get('log') ?? deps.log).error({ err }, 'unhandled error');
    return c.json({ error: { code: 'internal', message: 'internal error; the request id identifies it in the logs', details: { request_id: c.get('requestId') } } }, 500);
  });

  return app;
}

export type App = ReturnType<typeof createApp>;
