/**
 * Authentication (bearer JWT → principal on the context, else 401) and authorization (the route's action
 * checked against the permission table, else 403).
 */
import type { MiddlewareHandler } from 'hono';
import { isAllowed, type Action } from '../auth/permissions.ts';
import type { TokenVerifier } from '../auth/tokens.ts';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';

export function authenticate(props: { verifyToken: TokenVerifier }): MiddlewareHandler<AppEnv> {
  return async function authenticateMiddleware(c, next) {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header);
    if (!match) {
      c.header('WWW-Authenticate', 'Bearer');
      throw new ApiError(401, 'unauthenticated', 'send Authorization: Bearer <token> (npm run token -- --role viewer prints one)');
    }
    try {
      c.set('principal', await props.verifyToken(match[1]!));
    } catch (err) {
      c.header('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new ApiError(401, 'invalid_token', `the bearer token was refused: ${(err as Error).message}`);
    }
    await next();
  };
}

/** Refuses the request with 403 unless the principal's roles allow `action`. */
export function authorize(action: Action): MiddlewareHandler<AppEnv> {
  return async function authorizeMiddleware(c, next) {
    const principal = c.get('principal');
    if (!principal || !isAllowed(principal.roles, action)) {
      throw new ApiError(403, 'forbidden', `your role may not ${action}`, { action, roles: principal?.roles ?? [] });
    }
    await next();
  };
}
