/**
 * The OAuth2 resource server: tokens from an identity provider, verified against its JWKS (a real HTTP
 * server on 127.0.0.1 counting its requests), reaching real routes; every refusal is 401 invalid_token.
 * Also the configuration rules that decide which key sources the API accepts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../api/app.ts';
import { bearerSettingsFromConfig, createBearerVerifier, issueToken, rolesFromClaim, type BearerVerifierSettings, type TokenVerifier } from '../api/auth/tokens.ts';
import { productionGuard } from '../api/config.ts';
import { createPiiCipher } from '../api/domain/pii-cipher.ts';
import { parseEnv } from '../lib/env-config.ts';
import { createHarness, TEST_PII_KEYS, type Harness } from './harness.ts';

const ISSUER = 'https://idp.test/realms/stockwire';
const AUDIENCE = 'stockwire-api';
const SECRET = 'jwks-test-secret-jwks-test-secret!!';

interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256' | 'RS384' | 'PS256' | 'ES384';
  privateKey: CryptoKey;
  jwk: JWK;
}

/** A key pair and its published JWK; `publishAlg: false` leaves `alg` out of the JWK, as some providers do. */
async function signingKey(kid: string, alg: SigningKey['alg'], publishAlg = true): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, ...(publishAlg ? { alg } : {}), use: 'sig' } };
}

/** A fake identity provider: serves /.well-known/jwks.json from `keys` and counts the fetches. */
async function fakeIdp(keys: JWK[]) {
  const state = { keys, fetches: 0, url: '' };
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    state.fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  return Object.assign(state, { close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
}

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

interface SignOptions {
  sub?: string;
  iss?: string;
  aud?: string;
  exp?: number;
  nbf?: number;
  header?: Record<string, unknown>;
}

/** An identity-provider token signed by `key`, valid for 10 minutes unless the options say otherwise. */
async function sign(key: SigningKey, claims: JWTPayload = { roles: ['admin'] }, o: SignOptions = {}) {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...o.header })
    .setSubject(o.sub ?? 'idp-user')
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(o.exp ?? now() + 600);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(key.privateKey);
}

/** An HS256 token over `secret` bytes (whatever the attacker chose as the HMAC key). */
async function hmac(secret: Uint8Array, claims: JWTPayload, header: Record<string, unknown> = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header })
    .setSubject('mallory')
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setExpirationTime(now() + 600)
    .sign(secret);
}

let h: Harness;
let idp: Awaited<ReturnType<typeof fakeIdp>>;
let rsa: SigningKey;
let ec: SigningKey;
let stranger: SigningKey; // a key the provider never published
/** published keys for algorithms outside JWT_ALGORITHMS (RS256,ES256) */
let unpinned: SigningKey[];
let publishedKeys: JWK[];
/** dev-style: the provider's tokens (roles in `roles`) and the HS256 shared secret */
let devApp: App;
/** production-style: the provider only, roles in Keycloak's realm_access.roles */
let keycloakApp: App;

function settings(overrides: Partial<NonNullable<BearerVerifierSettings['jwks']>> = {}, secret?: string): BearerVerifierSettings {
  return {
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceSeconds: 30,
    secret,
    jwks: { url: idp.url, algorithms: ['RS256', 'ES256'], rolesClaim: 'roles', ...overrides },
  };
}

function appWith(verifyToken: TokenVerifier) {
  return createApp({
    db: h.db,
    pool: h.pool,
    log: h.log,
    clock: h.clock.now,
    verifyToken,
    cipher: createPiiCipher(TEST_PII_KEYS),
    settings: { reservationTtlSeconds: 900, defaultLocation: 'MAIN' },
  });
}

async function call(app: App, method: string, path: string, token: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

/** Asserts the app refuses `token` with 401 invalid_token; returns the reason it gave. */
async function expectRefused(app: App, token: string, label: string) {
  const res = await call(app, 'GET', '/v1/products', token);
  expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(401);
  expect(res.body.error.code, label).toBe('invalid_token');
  expect(res.headers.get('www-authenticate'), label).toContain('invalid_token');
  return res.body.error.message as string;
}

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.product('JWKS-ITEM');
  [rsa, ec, stranger] = await Promise.all([signingKey('rsa-1', 'RS256'), signingKey('ec-1', 'ES256'), signingKey('rsa-1-stranger', 'RS256')]);
  unpinned = await Promise.all([signingKey('rs384-1', 'RS384', false), signingKey('ps256-1', 'PS256'), signingKey('es384-1', 'ES384')]);
  publishedKeys = [rsa.jwk, ec.jwk, ...unpinned.map((k) => k.jwk)];
  idp = await fakeIdp([...publishedKeys]);
  devApp = appWith(createBearerVerifier(settings({}, SECRET)));
  keycloakApp = appWith(createBearerVerifier(settings({ rolesClaim: 'realm_access.roles' })));
});

afterAll(async () => {
  await idp?.close();
  await h?.close();
});

describe('identity-provider tokens', () => {
  it('accepts RS256 and ES256 tokens from the key set on protected routes and records the subject', async () => {
    const rs = await sign(rsa, { roles: ['clerk'] }, { sub: 'alice@idp' });
    const receipt = await call(devApp, 'POST', '/v1/receipts', rs, { sku: 'JWKS-ITEM', location: 'MAIN', qty: 3 });
    expect(receipt.status, JSON.stringify(receipt.body)).toBe(201);
    const es = await sign(ec, { roles: ['viewer'] }, { sub: 'bob@idp' });
    expect((await call(devApp, 'GET', '/v1/products', es)).status).toBe(200);
    const [m] = (await call(devApp, 'GET', '/v1/movements?sku=JWKS-ITEM&limit=1', es)).body.movements;
    expect(m.actor).toBe('alice@idp');
  });

  it("takes roles from a nested claim (Keycloak's realm_access.roles), keeping only known roles", async () => {
    const token = await sign(ec, { realm_access: { roles: ['offline_access', 'uma_authorization', 'clerk'] }, roles: ['admin'] });
    const adj = await call(keycloakApp, 'POST', '/v1/adjustments', token, { sku: 'JWKS-ITEM', location: 'MAIN', delta: 1, reason: 'found' });
    expect(adj.status, JSON.stringify(adj.body)).toBe(200);
    // the top-level `roles: [admin]` is not the configured claim, so admin-only routes stay closed
    const loc = await call(keycloakApp, 'POST', '/v1/locations', token, { code: 'NOPE', name: 'nope' });
    expect(loc.status).toBe(403);
    expect(loc.body.error.details.roles).toEqual(['clerk']);
  });

  it('reads roles from an array, a space-separated scope string, a dotted path or a claim name containing dots', () => {
    expect(rolesFromClaim({ roles: ['viewer', 'viewer', 'root'] }, 'roles')).toEqual(['viewer']);
    expect(rolesFromClaim({ scope: 'openid profile clerk  order-system' }, 'scope')).toEqual(['clerk', 'order-system']);
    expect(rolesFromClaim({ resource_access: { stockwire: { roles: ['manager'] } } }, 'resource_access.stockwire.roles')).toEqual(['manager']);
    expect(rolesFromClaim({ 'https://stockwire.example/roles': ['admin'] }, 'https://stockwire.example/roles')).toEqual(['admin']);
    expect(rolesFromClaim({ roles: 'admin' }, 'realm_access.roles')).toEqual([]);
    expect(rolesFromClaim({ realm_access: ['admin'] }, 'realm_access.0')).toEqual([]);
    expect(rolesFromClaim({}, 'constructor.name')).toEqual([]);
    expect(rolesFromClaim({ roles: [1, null, { admin: true }] }, 'roles')).toEqual([]);
  });

  it('authenticates a token whose roles are all unknown but answers 403 forbidden with no roles', async () => {
    for (const claims of [{ roles: ['superuser', 'offline_access'] }, {}, { roles: { admin: true } }]) {
      const res = await call(devApp, 'GET', '/v1/products', await sign(rsa, claims));
      expect(res.status, JSON.stringify(claims)).toBe(403);
      expect(res.body.error).toMatchObject({ code: 'forbidden', details: { roles: [] } });
    }
  });

  it('allows the clock tolerance on exp and nbf, and no more', async () => {
    expect((await call(devApp, 'GET', '/v1/products', await sign(rsa, undefined, { exp: now() - 10 }))).status).toBe(200);
    expect((await call(devApp, 'GET', '/v1/products', await sign(rsa, undefined, { nbf: now() + 10 }))).status).toBe(200);
    expect(await expectRefused(devApp, await sign(rsa, undefined, { exp: now() - 120 }), 'expired')).toMatch(/expired/);
    expect(await expectRefused(devApp, await sign(rsa, undefined, { nbf: now() + 120 }), 'not yet valid')).toMatch(/not yet valid/);
  });

  it('refuses another issuer, another audience, and tokens without sub or exp', async () => {
    expect(await expectRefused(devApp, await sign(rsa, undefined, { iss: 'https://evil.test/' }), 'issuer')).toMatch(/"iss"/);
    expect(await expectRefused(devApp, await sign(ec, undefined, { aud: 'another-api' }), 'audience')).toMatch(/"aud"/);
    const noSub = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'RS256', kid: rsa.kid })
      .setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(rsa.privateKey);
    expect(await expectRefused(devApp, noSub, 'no sub')).toMatch(/"sub"/);
    const noExp = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'RS256', kid: rsa.kid })
      .setSubject('x').setIssuer(ISSUER).setAudience(AUDIENCE).sign(rsa.privateKey);
    expect(await expectRefused(devApp, noExp, 'no exp')).toMatch(/"exp"/);
  });
});

describe('attacks on identity-provider tokens', () => {
  it('refuses alg none, in every spelling, with or without a kid of the key set', async () => {
    const payload = b64({ sub: 'mallory', iss: ISSUER, aud: AUDIENCE, exp: now() + 600, roles: ['admin'] });
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      for (const header of [{ alg, typ: 'JWT' }, { alg, kid: rsa.kid }]) {
        const unsigned = `${b64(header)}.${payload}.`;
        for (const app of [devApp, keycloakApp]) expect(await expectRefused(app, unsigned, `alg ${alg}`)).toMatch(/not accepted|invalid/);
      }
    }
    const noAlg = `${b64({ kid: rsa.kid })}.${payload}.${b64('sig')}`;
    await expectRefused(devApp, noAlg, 'no alg');
  });

  it('refuses HS256 signed with the public key (PEM, JWK JSON, or modulus bytes) as the HMAC secret', async () => {
    const pem = await exportSPKI((await importJWK(rsa.jwk, 'RS256')) as CryptoKey);
    const secrets = [
      new TextEncoder().encode(pem),
      new TextEncoder().encode(pem.trim()),
      new TextEncoder().encode(JSON.stringify(rsa.jwk)),
      new TextEncoder().encode(JSON.stringify({ keys: [rsa.jwk, ec.jwk] })),
      Buffer.from(rsa.jwk.n!, 'base64url'),
    ];
    for (const [i, secret] of secrets.entries()) {
      const forged = await hmac(secret, { roles: ['admin'] }, { kid: rsa.kid });
      // well formed: a verifier that keyed HMAC with the public key material would accept it
      await expect(jwtVerify(forged, secret, { issuer: ISSUER, audience: AUDIENCE })).resolves.toBeTruthy();
      // HS256 enabled (dev): checked against JWT_SECRET only, so the signature fails
      expect(await expectRefused(devApp, forged, `confusion ${i} (dev)`)).toMatch(/signature invalid/);
      // provider only: HS256 is not a configured algorithm at all
      expect(await expectRefused(keycloakApp, forged, `confusion ${i} (jwks only)`)).toMatch(/"HS256" is not accepted/);
    }
  });

  it('refuses a key outside the set: unknown kid, a forged kid, an embedded jwk and a jku pointing elsewhere', async () => {
    const attackerIdp = await fakeIdp([stranger.jwk]);
    try {
      const unknownKid = await sign(stranger);
      expect(await expectRefused(devApp, unknownKid, 'unknown kid')).toMatch(/no key/);
      const forgedKid = await sign({ ...stranger, kid: rsa.kid });
      expect(await expectRefused(devApp, forgedKid, 'kid of a real key')).toMatch(/signature invalid/);
      const noKid = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'RS256' })
        .setSubject('m').setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(stranger.privateKey);
      await expectRefused(devApp, noKid, 'no kid');
      const { kid: _k, alg: _a, use: _u, ...bareJwk } = stranger.jwk;
      const embedded = await sign(stranger, undefined, { header: { jwk: bareJwk } });
      await expectRefused(devApp, embedded, 'embedded jwk');
      const jku = await sign(stranger, undefined, { header: { jku: attackerIdp.url, x5u: attackerIdp.url } });
      await expectRefused(devApp, jku, 'jku');
      expect(attackerIdp.fetches).toBe(0);
    } finally {
      await attackerIdp.close();
    }
  });

  it('refuses a tampered payload, a stripped signature, a swapped header and algorithms outside JWT_ALGORITHMS', async () => {
    const token = await sign(rsa, { roles: ['viewer'] }, { sub: 'victor' });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const escalated = `${header}.${b64({ ...claims, roles: ['admin'] })}.${signature}`;
    expect(await expectRefused(devApp, escalated, 'tampered payload')).toMatch(/signature invalid/);
    const longer = `${header}.${b64({ ...claims, exp: claims.exp + 86_400 })}.${signature}`;
    await expectRefused(devApp, longer, 'extended exp');
    await expectRefused(devApp, `${header}.${payload}.`, 'stripped signature');
    await expectRefused(devApp, `${b64({ alg: 'ES256', kid: rsa.kid })}.${payload}.${signature}`, 'ES256 header on the RSA key');
    // keys the provider does publish, signing with algorithms JWT_ALGORITHMS leaves out
    for (const key of unpinned) expect(await expectRefused(devApp, await sign(key), `${key.alg} not pinned`)).toMatch(new RegExp(`"${key.alg}" is not accepted`));
    // the untampered token still works
    expect((await call(devApp, 'GET', '/v1/products', token)).status).toBe(200);
  });

  it('keeps the HS256 shared secret to the embedded default: accepted when configured, refused on a provider-only app', async () => {
    const own = await issueToken({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE }, { subject: 'dev', roles: ['viewer'] });
    expect((await call(devApp, 'GET', '/v1/products', own)).status).toBe(200);
    expect(await expectRefused(keycloakApp, own, 'HS256 without JWT_SECRET')).toMatch(/"HS256" is not accepted/);
    const otherSecret = await issueToken({ secret: 'x'.repeat(40), issuer: ISSUER, audience: AUDIENCE }, { subject: 'dev', roles: ['admin'] });
    await expectRefused(devApp, otherSecret, 'HS256 with another secret');
  });
});

describe('the key set cache', () => {
  it('fetches the key set once and serves later requests from the cache', async () => {
    const app = appWith(createBearerVerifier(settings()));
    const before = idp.fetches;
    const tokens = await Promise.all([sign(rsa), sign(ec), sign(rsa, { roles: ['viewer'] })]);
    // the first requests arrive together: one fetch serves them all
    const first = await Promise.all(tokens.map((t) => call(app, 'GET', '/v1/products', t)));
    expect(first.map((r) => r.status)).toEqual([200, 200, 200]);
    for (let i = 0; i < 5; i += 1) expect((await call(app, 'GET', '/v1/products', tokens[i % 3]!)).status).toBe(200);
    expect(idp.fetches - before).toBe(1);
  });

  it('re-fetches for unknown kids at most once per cooldown, so forged kids cannot flood the provider', async () => {
    const app = appWith(createBearerVerifier(settings({ cooldownMs: 60_000 })));
    expect((await call(app, 'GET', '/v1/products', await sign(rsa))).status).toBe(200);
    const before = idp.fetches;
    for (let i = 0; i < 10; i += 1) await expectRefused(app, await sign({ ...stranger, kid: `forged-${i}` }), `forged kid ${i}`);
    expect(idp.fetches - before).toBe(0); // still cooling down from the first fetch
  });

  it('picks up a rotated key (a new kid in the set) once the cooldown has passed', async () => {
    const verifyToken = createBearerVerifier(settings({ cooldownMs: 200 }));
    const app = appWith(verifyToken);
    expect((await call(app, 'GET', '/v1/products', await sign(rsa))).status).toBe(200);
    const rotated = await signingKey('rsa-2', 'RS256');
    const fetchesBefore = idp.fetches;
    idp.keys = [rotated.jwk, ...publishedKeys];
    try {
      await new Promise((r) => setTimeout(r, 250));
      const res = await call(app, 'GET', '/v1/products', await sign(rotated, { roles: ['viewer'] }));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(idp.fetches - fetchesBefore).toBe(1);
      // the old key stays valid while the provider still publishes it, and no further fetch is needed
      expect((await call(app, 'GET', '/v1/products', await sign(rsa))).status).toBe(200);
      expect(idp.fetches - fetchesBefore).toBe(1);
      // once the provider drops the old key, its tokens stop working after the next fetch
      idp.keys = [rotated.jwk, ...publishedKeys.filter((k) => k.kid !== rsa.kid)];
      await new Promise((r) => setTimeout(r, 250));
      await expectRefused(app, await sign(stranger), 'unknown kid triggers the re-fetch');
      const old = await verifyToken(await sign(rsa)).catch((err: Error) => err);
      expect(old).toBeInstanceOf(Error);
    } finally {
      idp.keys = [...publishedKeys];
    }
  });

  it('answers 503 jwks_unavailable with Retry-After, not 401 or 500, while the provider is unreachable', async () => {
    const down = await fakeIdp([]);
    const url = down.url;
    await down.close();
    const app = appWith(createBearerVerifier({ ...settings(), jwks: { ...settings().jwks!, url, timeoutMs: 1000 } }));
    const res = await call(app, 'GET', '/v1/products', await sign(rsa));
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('jwks_unavailable');
    expect(res.body.error.message).toMatch(/unavailable; retry later/);
    expect(res.headers.get('retry-after')).toBe('5');
  });
});

describe('token configuration', () => {
  const base = { DATABASE_URL: 'postgres://u@127.0.0.1/db', PII_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}` };
  const jwksUrl = 'https://idp.example/realms/stockwire/protocol/openid-connect/certs';

  it('validates JWKS_URL without JWT_SECRET, with documented defaults', () => {
    const c = parseEnv(productionGuard, { ...base, JWKS_URL: jwksUrl });
    expect(c.JWT_SECRET).toBeUndefined();
    expect(c).toMatchObject({ JWKS_URL: jwksUrl, JWT_ALGORITHMS: ['RS256', 'ES256'], JWT_ROLES_CLAIM: 'roles', JWT_CLOCK_TOLERANCE_SECONDS: 30 });
    expect(parseEnv(productionGuard, { ...base, JWKS_URL: jwksUrl, JWT_SECRET: '' }).JWT_SECRET).toBeUndefined();
    const prod = parseEnv(productionGuard, { ...base, NODE_ENV: 'production', JWKS_URL: jwksUrl, JWT_ROLES_CLAIM: 'realm_access.roles' });
    expect(bearerSettingsFromConfig(prod)).toMatchObject({ secret: undefined, jwks: { url: jwksUrl, rolesClaim: 'realm_access.roles' } });
  });

  it('still refuses JWT_SECRET under NODE_ENV=production without ALLOW_HS256_IN_PRODUCTION, with or without JWKS_URL', () => {
    for (const extra of [{}, { JWKS_URL: jwksUrl }]) {
      expect(() => parseEnv(productionGuard, { ...base, ...extra, NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }))
        .toThrow(/JWT_SECRET: NODE_ENV=production refuses HS256/);
    }
  });

  it('refuses no token source at all, a plain-HTTP JWKS_URL in production, and symmetric or unknown JWT_ALGORITHMS', () => {
    expect(() => parseEnv(productionGuard, base)).toThrow(/JWT_SECRET: no token source/);
    expect(() => parseEnv(productionGuard, { ...base, NODE_ENV: 'production', JWKS_URL: 'http://idp.example/certs' })).toThrow(/JWKS_URL: NODE_ENV=production needs an https/);
    for (const algorithms of ['RS256,HS256', 'none', 'ES256,foo', ' , ']) {
      expect(() => parseEnv(productionGuard, { ...base, JWKS_URL: jwksUrl, JWT_ALGORITHMS: algorithms }), algorithms).toThrow(/JWT_ALGORITHMS/);
    }
    expect(parseEnv(productionGuard, { ...base, JWKS_URL: jwksUrl, JWT_ALGORITHMS: 'ES256, EdDSA' }).JWT_ALGORITHMS).toEqual(['ES256', 'EdDSA']);
    expect(() => parseEnv(productionGuard, { ...base, JWKS_URL: jwksUrl, JWT_CLOCK_TOLERANCE_SECONDS: '3600' })).toThrow(/JWT_CLOCK_TOLERANCE_SECONDS/);
  });

  it('passes the HS256 secret to the verifier only where configuration allows it', () => {
    const dev = parseEnv(productionGuard, { ...base, JWKS_URL: jwksUrl, JWT_SECRET: 'x'.repeat(32) });
    expect(bearerSettingsFromConfig(dev).secret).toBe('x'.repeat(32));
    const hs256Only = parseEnv(productionGuard, { ...base, JWT_SECRET: 'y'.repeat(32) });
    expect(bearerSettingsFromConfig(hs256Only)).toMatchObject({ secret: 'y'.repeat(32), jwks: undefined, clockToleranceSeconds: 30 });
    // bypassing the guard (a hand-built config) still keeps the secret out in production
    expect(bearerSettingsFromConfig({ ...dev, NODE_ENV: 'production' }).secret).toBeUndefined();
    expect(bearerSettingsFromConfig({ ...dev, NODE_ENV: 'production', ALLOW_HS256_IN_PRODUCTION: 'true' }).secret).toBe('x'.repeat(32));
  });
});
