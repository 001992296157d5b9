/**
 * Bearer tokens from two key sources, each with its algorithms pinned: HS256 JWTs signed with the shared
 * secret (the embedded default; `issueToken` makes them) and RS256/ES256 JWTs from an identity provider's
 * key set (jwks-verifier.ts). The token header's `alg` picks the source, so a token can never be checked
 * with a key of the other kind (`alg: none`, or HS256 keyed by the provider's public key, simply fail).
 * Verifying checks signature, issuer, audience, expiry and not-before, and yields the caller's principal:
 * the subject and the roles from the configured claim, unknown role names dropped.
 */
import { SignJWT, decodeProtectedHeader, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { ApiConfig } from '../config.ts';
import { ROLES, type Role } from './permissions.ts';
import { createJwksVerifier, KeySetUnavailable, type JwksSettings } from './jwks-verifier.ts';

export interface Principal {
  /** who acted: the token subject (recorded on ledger and audit rows) */
  subject: string;
  roles: Role[];
}

export interface TokenSettings {
  secret: string;
  issuer: string;
  audience: string;
}

export interface BearerVerifierSettings {
  issuer: string;
  audience: string;
  /** leeway for exp/nbf against clock skew between us and the token's issuer */
  clockToleranceSeconds?: number | undefined;
  /** the HS256 shared secret; absent: HS256 tokens are refused */
  secret?: string | undefined;
  /** the identity provider; absent: only HS256 tokens are accepted */
  jwks?: (Omit<JwksSettings, 'issuer' | 'audience' | 'clockToleranceSeconds'> & { rolesClaim: string }) | undefined;
}

export class InvalidToken extends Error {
  readonly code = 'invalid_token';
}

export type TokenVerifier = (token: string) => Promise<Principal>;

const ALGORITHM = 'HS256';
/** the claim our own HS256 tokens carry their roles in */
const HS256_ROLES_CLAIM = 'roles';

/** Signs a token for `subject` with `roles`, valid for `ttlSeconds`. */
export async function issueToken(settings: TokenSettings, props: { subject: string; roles: Role[]; ttlSeconds?: number }) {
  return new SignJWT({ roles: props.roles })
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
    .setSubject(props.subject)
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setIssuedAt()
    .setExpirationTime(`${props.ttlSeconds ?? 12 * 3600}s`)
    .sign(new TextEncoder().encode(settings.secret));
}

/**
 * The known roles named by `claim`: a top-level claim name (also one containing dots, like Auth0's URL
 * claims) or a dotted path (`realm_access.roles`), holding an array of names or a space-separated string.
 */
export function rolesFromClaim(payload: JWTPayload, claim: string): Role[] {
  const own = (node: unknown, key: string) =>
    node !== null && typeof node === 'object' && !Array.isArray(node) && Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined;
  const value = Object.hasOwn(payload, claim) ? payload[claim] : claim.split('.').reduce<unknown>(own, payload);
  const names: unknown[] = typeof value === 'string' ? value.split(/\s+/) : Array.isArray(value) ? value : [];
  const known = names.filter((r): r is Role => typeof r === 'string' && (ROLES as readonly string[]).includes(r));
  return [...new Set(known)];
}

/** Returns a verifier for the HS256 shared-secret tokens only (the embedded default, and tests). */
export function createTokenVerifier(settings: TokenSettings): TokenVerifier {
  return createBearerVerifier({ issuer: settings.issuer, audience: settings.audience, secret: settings.secret });
}

/** Returns a verifier that routes a token by its header's `alg` to the HS256 secret or the identity provider. */
export function createBearerVerifier(settings: BearerVerifierSettings): TokenVerifier {
  const clockTolerance = settings.clockToleranceSeconds ?? 0;
  const secret = settings.secret ? new TextEncoder().encode(settings.secret) : undefined;
  const jwks = settings.jwks
    ? createJwksVerifier({ ...settings.jwks, issuer: settings.issuer, audience: settings.audience, clockToleranceSeconds: clockTolerance })
    : undefined;
  const jwksAlgorithms: readonly string[] = settings.jwks?.algorithms ?? [];

  async function verifyHs256(token: string) {
    const { payload } = await jwtVerify(token, secret!, {
      algorithms: [ALGORITHM],
      issuer: settings.issuer,
      audience: settings.audience,
      clockTolerance,
      requiredClaims: ['sub', 'exp'],
    });
    return payload;
  }

  const verified = new VerifiedTokens();
  return async function verifyToken(token: string): Promise<Principal> {
    const known = verified.get(token);
    if (known) return known;
    try {
      const { alg } = decodeProtectedHeader(token);
      let payload: JWTPayload;
      let rolesClaim: string;
      const ownSecret = alg === ALGORITHM && secret !== undefined;
      if (ownSecret) {
        payload = await verifyHs256(token);
        rolesClaim = HS256_ROLES_CLAIM;
      } else if (jwks && typeof alg === 'string' && jwksAlgorithms.includes(alg)) {
        payload = await jwks(token);
        rolesClaim = settings.jwks!.rolesClaim;
      } else {
        const accepted = [...(secret ? [ALGORITHM] : []), ...jwksAlgorithms];
        throw new InvalidToken(`algorithm ${JSON.stringify(alg ?? null)} is not accepted (accepted: ${accepted.join(', ')})`);
      }
      const principal = { subject: payload.sub!, roles: rolesFromClaim(payload, rolesClaim) };
      // only tokens of the process' own secret: an identity provider's key set can drop a key at any time
      if (ownSecret) verified.set(token, principal, payload.exp! * 1000);
      return principal;
    } catch (err) {
      if (err instanceof InvalidToken) throw err;
      throw new InvalidToken(reasonFor(err), { cause: err });
    }
  };
}

/**
 * HS256 tokens verified in the last minute, so a client sending the same bearer token on every request
 * costs one signature check per minute instead of one per request (HMAC through WebCrypto, with its key
 * import, was ~9% of the API's CPU on POST /v1/orders). Keyed by the whole token, signature included, so
 * only a token that verified hits; an entry lives until the token's `exp` or for a minute, whichever is
 * first. Bounded in size. Identity-provider tokens are not kept: a key dropped from the provider's set
 * must stop working at the next key-set fetch.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { principal: Principal; until: number }>();
  constructor(private readonly maxEntries = 10_000, private readonly maxAgeMs = 60_000) {}

  get(token: string): Principal | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (Date.now() < entry.until) return entry.principal;
    this.entries.delete(token);
    return undefined;
  }

  set(token: string, principal: Principal, expiresAtMs: number): void {
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!); // oldest first
    this.entries.set(token, { principal, until: Math.min(expiresAtMs, Date.now() + this.maxAgeMs) });
  }
}

/** The reason shown to the client: jose's claim messages are safe to echo, everything else is summarised. */
function reasonFor(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return err.claim === 'nbf' ? 'token not yet valid' : err.message;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key in the identity provider's key set matches the token's kid and alg";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature invalid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not accepted';
  if (err instanceof KeySetUnavailable) return "the identity provider's keys are unavailable; retry later";
  return 'token invalid';
}

/** The verifier settings the API process runs with: HS256 only where configuration allows it. */
export function bearerSettingsFromConfig(
  config: Pick<ApiConfig, 'NODE_ENV' | 'JWT_SECRET' | 'ALLOW_HS256_IN_PRODUCTION' | 'JWT_ISSUER' | 'JWT_AUDIENCE' | 'JWKS_URL' | 'JWT_ALGORITHMS' | 'JWT_ROLES_CLAIM' | 'JWT_CLOCK_TOLERANCE_SECONDS'>,
  log?: Logger,
): BearerVerifierSettings {
  // productionGuard already refuses this combination; checked again so the verifier never depends on it
  const hs256Allowed = config.NODE_ENV !== 'production' || config.ALLOW_HS256_IN_PRODUCTION === 'true';
  return {
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    clockToleranceSeconds: config.JWT_CLOCK_TOLERANCE_SECONDS,
    secret: hs256Allowed ? config.JWT_SECRET : undefined,
    jwks: config.JWKS_URL
      ? { url: config.JWKS_URL, algorithms: config.JWT_ALGORITHMS, rolesClaim: config.JWT_ROLES_CLAIM, log: log?.child({ component: 'jwks' }) }
      : undefined,
  };
}
