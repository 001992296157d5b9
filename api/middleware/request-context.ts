/**
 * Gives every request an id (the caller's X-Request-Id when it is sane, else a new one), echoes it back,
 * and puts a child logger carrying it on the context. Logs one line per request.
 */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from 'pino';
import type { AppEnv } from '../context.ts';
import type { ApiMetrics } from '../metrics.ts';

const SANE_ID = /^[A-Za-z0-9._:-]{1,100}$/;

function routePattern(routePath: string | undefined): string {
  return !routePath || routePath === '*' || routePath === '/v1/*' ? 'unmatched' : routePath;
}

export function requestContext(props: { log: Logger; metrics: ApiMetrics }): MiddlewareHandler<AppEnv> {
  return async function requestContextMiddleware(c, next) {
    const given = c.req.header('x-request-id');
    const requestId = given && SANE_ID.test(given) ? given : randomUUID();
    const log = props.log.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', log);
    c.header('X-Request-Id', requestId);
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    // the matched route pattern, not the raw path, keeps label cardinality bounded
    props.metrics.httpDuration.observe({ method: c.req.method, route: routePattern(routePath(c, -1)), status: String(c.res.status) }, seconds);
    log.info({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 1000) }, 'request');
  };
}
