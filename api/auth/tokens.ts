/**
 * Bearer tokens: HS256 JWTs signed with a secret from the environment (the embedded default). Verifying
 * checks signature, issuer, audience, expiry and not-before, and yields the caller's principal.
 */
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { ROLES, type Role } from './permissions.ts';

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

export class InvalidToken extends Error {
  readonly code = 'invalid_token';
}

const ALGORITHM = 'HS256';

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

/** Returns a verifier that turns a compact JWT into a Principal or throws InvalidToken. */
export function createTokenVerifier(settings: TokenSettings) {
  const key = new TextEncoder().encode(settings.secret);
  return async function verifyToken(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [ALGORITHM],
        issuer: settings.issuer,
        audience: settings.audience,
        requiredClaims: ['sub', 'exp'],
      });
      const claimed = Array.isArray(payload.roles) ? payload.roles : [];
      const roles = claimed.filter((r): r is Role => typeof r === 'string' && (ROLES as readonly string[]).includes(r));
      return { subject: payload.sub!, roles };
    } catch (err) {
      const reason = err instanceof joseErrors.JWTExpired ? 'token expired' : 'token invalid';
      throw new InvalidToken(reason, { cause: err });
    }
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;
