/**
 * Authentication (bearer JWT or API key → principal on the context, else 401) and authorization (the
 * route's action checked against the permission table, else 403; a location-scoped key's location
 * checked by the routes that take one, else 403).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { looksLikeApiKey } from '../auth/api-key-format.ts';
import { AddressNotAllowed, InvalidApiKey, type ApiKeyVerifier } from '../auth/api-key-verifier.ts';
import { isAllowed, type Action } from '../auth/permissions.ts';
import { KeySetUnavailable } from '../auth/jwks-verifier.ts';
import type { TokenVerifier } from '../auth/tokens.ts';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';
import type { CidrList } from '../net/cidr.ts';
import { clientIp } from '../net/client-ip.ts';

/**
 * `verifyApiKey` accepts `Authorization: Bearer sw_…` and `X-API-Key: sw_…`; `trustedProxies` (default
 * none) decides whose X-Forwarded-For is believed for a key's allowed_cidrs.
 */
export function authenticate(props: { verifyToken: TokenVerifier; verifyApiKey?: ApiKeyVerifier; trustedProxies?: CidrList }): MiddlewareHandler<AppEnv> {
  async function keyPrincipal(c: Context<AppEnv>, key: string) {
    try {
      if (!props.verifyApiKey) throw new InvalidApiKey();
      return await props.verifyApiKey(key, clientIp(c, props.trustedProxies));
    } catch (err) {
      if (err instanceof AddressNotAllowed) throw new ApiError(403, 'ip_not_allowed', err.message, { ip: err.address });
      if (!(err instanceof InvalidApiKey)) throw err;
      c.header('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new ApiError(401, err.code, err.message);
    }
  }

  return async function authenticateMiddleware(c, next) {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header);
    const keyHeader = c.req.header('x-api-key');
    if (keyHeader !== undefined || (match && looksLikeApiKey(match[1]!))) {
      // two credentials could name two callers; refuse rather than pick one
      if (keyHeader !== undefined && header !== '') throw new ApiError(401, 'ambiguous_credentials', 'send either Authorization or X-API-Key, not both');
      c.set('principal', await keyPrincipal(c, (keyHeader ?? match![1]!).trim()));
      await next();
      return;
    }
    if (!match) {
      c.header('WWW-Authenticate', 'Bearer');
      throw new ApiError(401, 'unauthenticated', 'send Authorization: Bearer <token> (npm run token -- --role viewer prints one)');
    }
    try {
      c.set('principal', await props.verifyToken(match[1]!));
    } catch (err) {
      // the identity provider's keys could not be fetched: the token may be fine, so say "retry", not "invalid"
      if ((err as Error).cause instanceof KeySetUnavailable) {
        c.header('Retry-After', '5');
        throw new ApiError(503, 'jwks_unavailable', (err as Error).message);
      }
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

/** Refuses with 403 location_not_allowed when the caller's API key is limited to other locations. */
export function assertLocationAllowed(c: Context<AppEnv>, location: string): void {
  const allowed = c.get('principal').locations;
  if (allowed && !allowed.includes(location)) {
    throw new ApiError(403, 'location_not_allowed', `this API key may act on ${allowed.join(', ')} only, not on ${location}`, {
      location,
      allowed: [...allowed],
    });
  }
}
