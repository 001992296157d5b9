/**
 * App-only access tokens for Microsoft Graph: the OAuth2 client-credentials grant against the Microsoft
 * identity platform (`POST {authorityHost}/{tenantId}/oauth2/v2.0/token`, scope `.../.default`).
 *
 * Invariant: one token request per token lifetime. The token is cached and reused until shortly before
 * it expires; concurrent callers share one in-flight request. Failures become ProviderError, so the
 * sheet-sync engine retries a throttled or unreachable token endpoint like any other provider call.
 */
import type { AuthenticationProvider } from '@microsoft/microsoft-graph-client';
import { ProviderError, retryAfterMs } from '../sheet-sync/sheet-target.ts';

export interface ClientCredentialsProps {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** default https://login.microsoftonline.com */
  authorityHost?: string;
  /** default https://graph.microsoft.com/.default */
  scope?: string;
  /** milliseconds since the epoch; injectable for tests */
  clock?: () => number;
}

/** A token is renewed this long before it expires (at most half its lifetime). */
const RENEW_BEFORE_MS = 5 * 60_000;

/** Creates a Graph AuthenticationProvider that fetches and caches client-credentials tokens. */
export function createClientCredentialsAuth(props: ClientCredentialsProps): AuthenticationProvider {
  const authorityHost = (props.authorityHost ?? 'https://login.microsoftonline.com').replace(/\/+$/, '');
  const tokenUrl = `${authorityHost}/${encodeURIComponent(props.tenantId)}/oauth2/v2.0/token`;
  const scope = props.scope ?? 'https://graph.microsoft.com/.default';
  const clock = props.clock ?? Date.now;
  let cached: { token: string; renewAt: number } | undefined;
  let inFlight: Promise<string> | undefined;

  async function requestToken(): Promise<string> {
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: props.clientId,
      client_secret: props.clientSecret,
      scope,
    });
    let res: Response;
    try {
      res = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
      });
    } catch (err) {
      throw Object.assign(new ProviderError(`token endpoint ${tokenUrl} unreachable: ${(err as Error).message}`, 0), { cause: err });
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || typeof body.access_token !== 'string') {
      const reason = body.error_description ?? body.error ?? res.statusText;
      throw new ProviderError(
        `token request for client ${props.clientId} failed (${res.status}): ${String(reason)}; check the tenant id, client id and secret`,
        res.ok ? 502 : res.status,
        retryAfterMs(res.headers.get('retry-after')),
      );
    }
    const lifetimeMs = Number(body.expires_in ?? 3600) * 1000;
    cached = { token: body.access_token, renewAt: clock() + lifetimeMs - Math.min(RENEW_BEFORE_MS, lifetimeMs / 2) };
    return body.access_token;
  }

  return {
    async getAccessToken() {
      if (cached && clock() < cached.renewAt) return cached.token;
      inFlight ??= requestToken().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
  };
}
