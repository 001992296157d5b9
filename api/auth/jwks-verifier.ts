/**
 * Identity-provider tokens: verifies a JWT against the provider's JSON Web Key Set, fetched from JWKS_URL
 * with jose's remote key set (cached for `cacheMaxAgeMs`; an unknown `kid` triggers at most one re-fetch per
 * `cooldownMs`, which picks up key rotation without letting forged kids hammer the provider).
 *
 * Invariant: only the pinned asymmetric algorithms verify here, and only with a key from the fetched set.
 * A token never chooses its own key: `alg: none`, HS256 "signed" with the public key, and `jwk`/`jku`/`x5u`
 * headers all fail. Turning the verified payload into a principal is tokens.ts's job.
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';

/** Algorithms an identity provider may sign with: asymmetric only, never `none` or HMAC. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

export interface JwksSettings {
  url: string | URL;
  issuer: string;
  audience: string;
  /** accepted `alg` values, a subset of ASYMMETRIC_ALGORITHMS (JWT_ALGORITHMS) */
  algorithms: readonly string[];
  clockToleranceSeconds: number;
  /** minimum time between re-fetches caused by an unknown kid (jose default 30 s) */
  cooldownMs?: number | undefined;
  /** how long a fetched key set is used before it is fetched again (jose default 10 min) */
  cacheMaxAgeMs?: number | undefined;
  /** timeout of one key-set fetch (jose default 5 s) */
  timeoutMs?: number | undefined;
  log?: Logger | undefined;
}

/** The key set could not be fetched or read: the token may be fine, the provider is not reachable. */
export class KeySetUnavailable extends Error {
  readonly code = 'jwks_unavailable';
}

/** Returns a function that verifies a compact JWT against the remote key set and yields its payload. */
export function createJwksVerifier(settings: JwksSettings) {
  const algorithms = [...settings.algorithms];
  const refused = algorithms.filter((alg) => !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg));
  if (algorithms.length === 0 || refused.length > 0) {
    throw new TypeError(`JWKS algorithms must be among ${ASYMMETRIC_ALGORITHMS.join(', ')}; got ${JSON.stringify(algorithms)}`);
  }
  const url = new URL(settings.url);
  const remote = createRemoteJWKSet(url, {
    cooldownDuration: settings.cooldownMs,
    cacheMaxAge: settings.cacheMaxAgeMs,
    timeoutDuration: settings.timeoutMs,
  });

  // jose signals "no such key" and "several keys" itself; anything else from the key set is a fetch failure
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (err instanceof joseErrors.JOSEError && !(err instanceof joseErrors.JWKSTimeout) && err.code !== joseErrors.JOSEError.code && !(err instanceof joseErrors.JWKSInvalid)) {
        throw err;
      }
      settings.log?.warn({ err: { message: (err as Error).message }, url: url.href }, 'identity provider key set unavailable');
      throw new KeySetUnavailable(`the identity provider's key set could not be fetched (${(err as Error).message})`, { cause: err });
    }
  };

  return async function verifyJwks(token: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, getKey, {
      algorithms,
      issuer: settings.issuer,
      audience: settings.audience,
      clockTolerance: settings.clockToleranceSeconds,
      requiredClaims: ['sub', 'exp'],
    });
    return payload;
  };
}

export type JwksVerifier = ReturnType<typeof createJwksVerifier>;
