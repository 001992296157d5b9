/**
 * Who calls, by network address: the client address is resolved once per request (the socket peer, or
 * behind TRUST_PROXY_CIDRS the right-most untrusted X-Forwarded-For hop) and put on the context; the
 * allowlists refuse addresses outside API_ALLOWED_CIDRS (every request but the probes) and outside
 * ADMIN_ALLOWED_CIDRS (admin principals, and the admin-only actions whoever asks) with 403 ip_not_allowed.
 *
 * Invariant: an empty list restricts nothing; a configured list refuses a request whose address is
 * unknown (fail closed), and X-Forwarded-For is believed only from trusted proxies.
 */
import type { MiddlewareHandler } from 'hono';
import type { Action } from '../auth/permissions.ts';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';
import type { CidrList } from '../net/cidr.ts';
import { clientIp } from '../net/client-ip.ts';

/** Actions that only an allowed network may perform, whatever the caller's role. */
export const ADMIN_ACTIONS: ReadonlySet<Action> = new Set<Action>(['api-keys:manage', 'locations:write', 'audit:read', 'webhooks:manage']);

function restricts(list: CidrList | undefined): list is CidrList {
  return list !== undefined && list.entries.length > 0;
}

function refuse(address: string | null, what: string, variable: string): never {
  throw new ApiError(403, 'ip_not_allowed', `${what} is not allowed from ${address ?? 'an unknown address'} (${variable})`, { client_ip: address });
}

/** Puts the client address on the context as `clientIp`. */
export function clientAddress(props: { trustedProxies?: CidrList | undefined }): MiddlewareHandler<AppEnv> {
  return async function clientAddressMiddleware(c, next) {
    c.set('clientIp', clientIp(c, props.trustedProxies));
    await next();
  };
}

/** Refuses every request from outside `allowed` (API_ALLOWED_CIDRS); no list: everyone. */
export function ipAllowlist(props: { allowed?: CidrList | undefined }): MiddlewareHandler<AppEnv> {
  const { allowed } = props;
  return async function ipAllowlistMiddleware(c, next) {
    if (restricts(allowed)) {
      const address = c.get('clientIp');
      if (address === null || !allowed.has(address)) refuse(address, 'this API', 'API_ALLOWED_CIDRS');
    }
    await next();
  };
}

/**
 * After authentication: refuses admin principals from outside `allowed` (ADMIN_ALLOWED_CIDRS), and leaves
 * the list on the context for the per-route check of admin-only actions.
 */
export function adminNetwork(props: { allowed?: CidrList | undefined }): MiddlewareHandler<AppEnv> {
  const allowed = restricts(props.allowed) ? props.allowed : undefined;
  return async function adminNetworkMiddleware(c, next) {
    if (allowed) {
      c.set('adminCidrs', allowed);
      const address = c.get('clientIp');
      if (c.get('principal')?.roles.includes('admin') && (address === null || !allowed.has(address))) refuse(address, 'an admin token', 'ADMIN_ALLOWED_CIDRS');
    }
    await next();
  };
}

/** Per route: refuses an admin-only `action` from outside ADMIN_ALLOWED_CIDRS, whatever the role. */
export function adminActionNetwork(action: Action): MiddlewareHandler<AppEnv> {
  const guarded = ADMIN_ACTIONS.has(action);
  return async function adminActionNetworkMiddleware(c, next) {
    const allowed = guarded ? c.get('adminCidrs') : undefined;
    if (allowed) {
      const address = c.get('clientIp');
      if (address === null || !allowed.has(address)) refuse(address, action, 'ADMIN_ALLOWED_CIDRS');
    }
    await next();
  };
}
