/**
 * API keys for machine callers (admin only, action api-keys:manage): create (the full key is in that
 * one answer and nowhere else — not in the database, the audit row or an idempotency record), list,
 * rotate (a successor with the same roles and scope; the old key keeps working for a grace period, so
 * both are valid while callers switch) and revoke (effective on the next request).
 *
 * A key's name is its actor (`key:<name>` on ledger and audit rows, and its idempotency namespace), so
 * one name belongs to one live key chain: creating a second live key with the same name is refused.
 * A location-limited key may not hold a role that can act beyond locations (imports, key management),
 * because those routes have no location to check.
 */
import { randomUUID } from 'node:crypto';
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { Selectable } from 'kysely';
import type { ApiKeysTable } from '../../db/schema.ts';
import { generateApiKey } from '../auth/api-key-format.ts';
import { isAllowed, ROLES, type Action } from '../auth/permissions.ts';
import type { AppEnv, RouteDeps } from '../context.ts';
import type { CommandTx } from '../domain/command-runner.ts';
import { ApiError, NotFound } from '../errors.ts';
import { parseCidrList } from '../net/cidr.ts';
import { type RequestCommandContext, executeCommand, protectedRoute, refuseIdempotencyKey } from './route-kit.ts';
import { jsonBody, jsonResponse, LocationCode } from './schemas.ts';

/** actions no location check guards; a location-limited key must not be able to perform them */
const UNSCOPED_ACTIONS: readonly Action[] = ['stock:import', 'api-keys:manage'];
const MAX_GRACE_SECONDS = 30 * 86_400;

const KeyName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, . _ - (up to 64)').openapi({ example: 'shop-orders' });
const Cidr = z.string().trim().min(1).max(64)
  .refine((v) => parsesAsCidr(v), 'not an IP address or CIDR range (e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7)');
const FutureInstant = z.iso.datetime({ offset: true }).openapi({ example: '2027-06-30T00:00:00Z' });

const CreateApiKey = z
  .object({
    name: KeyName,
    roles: z.array(z.enum(ROLES)).min(1).max(ROLES.length),
    locations: z.array(LocationCode).min(1).max(100).optional().openapi({ description: 'the only locations the key may act on; absent = all' }),
    allowed_cidrs: z.array(Cidr).min(1).max(100).optional().openapi({ description: 'the only client addresses the key may be used from; absent = any' }),
    expires_at: FutureInstant.optional(),
  })
  .openapi('CreateApiKey');

const RotateApiKey = z
  .object({
    grace_seconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).default(86_400).openapi({ description: 'how long the old key keeps working' }),
    expires_at: FutureInstant.optional().openapi({ description: "the new key's expiry; absent = the old key's original expiry" }),
  })
  .openapi('RotateApiKey');

const ApiKey = z
  .object({
    id: z.string().uuid(),
    name: z.string(),
    key_prefix: z.string(),
    roles: z.array(z.string()),
    locations: z.array(z.string()).nullable(),
    allowed_cidrs: z.array(z.string()).nullable(),
    status: z.enum(['active', 'expired', 'revoked']),
    created_by: z.string(),
    created_at: z.string(),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
    last_used_at: z.string().nullable(),
    replaces: z.string().nullable(),
  })
  .openapi('ApiKey');

const IssuedKey = z
  .object({ key: z.string().openapi({ description: 'sw_<prefix>_<secret>: shown in this answer only' }), api_key: ApiKey })
  .openapi('IssuedApiKey');

const KeyId = z.object({ id: z.string().uuid() });

const routes = {
  create: protectedRoute('api-keys:manage', {
    method: 'post', path: '/api-keys', summary: 'Create an API key (the key is shown once, in this answer)',
    request: jsonBody(CreateApiKey), responses: { 201: jsonResponse('the new key and its record', IssuedKey) },
  }),
  list: protectedRoute('api-keys:manage', {
    method: 'get', path: '/api-keys', summary: 'API keys (never their secrets)',
    responses: { 200: jsonResponse('keys, newest first', z.object({ api_keys: z.array(ApiKey) })) },
  }),
  rotate: protectedRoute('api-keys:manage', {
    method: 'post', path: '/api-keys/{id}/rotate', summary: 'Issue a successor; the old key stays valid for grace_seconds',
    request: { params: KeyId, ...jsonBody(RotateApiKey) },
    responses: { 201: jsonResponse('the new key, its record and the replaced record', IssuedKey.extend({ replaced: ApiKey })) },
  }),
  revoke: protectedRoute('api-keys:manage', {
    method: 'delete', path: '/api-keys/{id}', summary: 'Revoke a key now (a revoked key stays listed)',
    request: { params: KeyId }, responses: { 200: jsonResponse('the revoked key', ApiKey) },
  }),
};

type KeyRow = Omit<Selectable<ApiKeysTable>, 'secret_hash'>;
/** every column but secret_hash: nothing read here can leak it */
const PUBLIC_COLUMNS = [
  'id', 'name', 'key_prefix', 'roles', 'locations', 'allowed_cidrs', 'created_by', 'created_at', 'expires_at', 'revoked_at', 'last_used_at', 'replaces',
] as const;

export function apiKeyRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.create, async (c) => {
    const body = c.req.valid('json');
    refuseIdempotencyKey(c, 'revoke any key whose answer you lost');
    const result = await executeCommand(c, deps, body, async (ctx) => {
      const expiresAt = futureInstant(body.expires_at, ctx.now);
      await checkScope(ctx.trx, body.roles, body.locations);
      await refuseLiveName(ctx.trx, body.name, ctx.now);
      const issued = await insertKey(ctx, { ...body, expiresAt, replaces: null });
      return { status: 201 as const, body: issued, audit: { action: 'api_key.create', entity: 'api_key', entityId: issued.api_key.id, after: issued.api_key } };
    });
    return c.json(result.body, 201);
  });

  app.openapi(routes.list, async (c) => {
    const rows = await deps.db.selectFrom('api_keys').select(PUBLIC_COLUMNS).orderBy('created_at', 'desc').orderBy('id').execute();
    const now = deps.clock();
    return c.json({ api_keys: rows.map((r) => view(r, now)) }, 200);
  });

  app.openapi(routes.rotate, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    refuseIdempotencyKey(c, 'revoke any key whose answer you lost');
    const result = await executeCommand(c, deps, { id, ...body }, async (ctx) => {
      const old = await lockKey(ctx.trx, id);
      if (view(old, ctx.now).status !== 'active') {
        throw new ApiError(409, 'api_key_inactive', `API key ${id} is ${view(old, ctx.now).status}; create a new key instead`, { id });
      }
      const successor = await ctx.trx.selectFrom('api_keys').select('id').where('replaces', '=', id).executeTakeFirst();
      if (successor) throw new ApiError(409, 'already_rotated', `API key ${id} was already rotated; rotate its successor`, { id, successor: successor.id });
      const graceEnd = new Date(ctx.now.getTime() + body.grace_seconds * 1000);
      const oldExpiry = old.expires_at && old.expires_at < graceEnd ? old.expires_at : graceEnd; // never lengthens the old key's life
      const issued = await insertKey(ctx, {
        name: old.name, roles: old.roles, locations: old.locations ?? undefined, allowed_cidrs: old.allowed_cidrs ?? undefined,
        expiresAt: body.expires_at === undefined ? old.expires_at : futureInstant(body.expires_at, ctx.now), replaces: id,
      });
      const replaced = await ctx.trx.updateTable('api_keys').set({ expires_at: oldExpiry }).where('id', '=', id).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow();
      const answer = { ...issued, replaced: view(replaced, ctx.now) };
      return {
        status: 201 as const, body: answer,
        audit: { action: 'api_key.rotate', entity: 'api_key', entityId: id, before: view(old, ctx.now), after: { replaced: answer.replaced, successor: issued.api_key } },
      };
    });
    return c.json(result.body, 201);
  });

  app.openapi(routes.revoke, async (c) => {
    const { id } = c.req.valid('param');
    const result = await executeCommand(c, deps, { id }, async (ctx) => {
      const before = await lockKey(ctx.trx, id);
      const after = await ctx.trx.updateTable('api_keys').set({ revoked_at: before.revoked_at ?? ctx.now }).where('id', '=', id)
        .returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow();
      return {
        status: 200 as const, body: view(after, ctx.now),
        audit: { action: 'api_key.revoke', entity: 'api_key', entityId: id, before: view(before, ctx.now), after: view(after, ctx.now) },
      };
    });
    return c.json(result.body, 200);
  });

  return app;
}

function futureInstant(text: string | undefined, now: Date): Date | null {
  if (text === undefined) return null;
  const at = new Date(text);
  if (at.getTime() <= now.getTime()) throw new ApiError(400, 'validation_failed', 'expires_at must be in the future', { expires_at: text });
  return at;
}

async function checkScope(trx: CommandTx, roles: readonly string[], locations: readonly string[] | undefined) {
  if (!locations) return;
  const unscoped = UNSCOPED_ACTIONS.filter((action) => isAllowed(roles, action));
  if (unscoped.length > 0) {
    throw new ApiError(400, 'scope_not_enforceable', `a location-limited key may not hold roles that can ${unscoped.join(', ')} (those are not limited by location)`, { actions: unscoped });
  }
  const known = await trx.selectFrom('locations').select('code').where('code', 'in', [...locations]).execute();
  const missing = locations.filter((l) => !known.some((k) => k.code === l));
  if (missing.length > 0) throw new ApiError(422, 'unknown_location', `no such location: ${missing.join(', ')}`, { locations: missing });
}

async function refuseLiveName(trx: CommandTx, name: string, now: Date) {
  // serialises creates of the same name, so two concurrent ones cannot both pass the check
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`api_keys:${name}`}))`.execute(trx);
  const live = await trx.selectFrom('api_keys').select('id').where('name', '=', name).where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])).executeTakeFirst();
  if (live) throw new ApiError(409, 'already_exists', `a live API key is named ${name}; rotate it (POST /v1/api-keys/${live.id}/rotate) or revoke it first`, { id: live.id });
}

async function lockKey(trx: CommandTx, id: string): Promise<KeyRow> {
  const row = await trx.selectFrom('api_keys').select(PUBLIC_COLUMNS).where('id', '=', id).forUpdate().executeTakeFirst();
  if (!row) throw new NotFound('API key', id);
  return row;
}

async function insertKey(
  ctx: RequestCommandContext,
  key: { name: string; roles: readonly string[]; locations?: readonly string[] | undefined; allowed_cidrs?: readonly string[] | undefined; expiresAt: Date | null; replaces: string | null },
) {
  const fresh = generateApiKey();
  const row = await ctx.trx.insertInto('api_keys').values({
    id: randomUUID(),
    name: key.name,
    key_prefix: fresh.prefix,
    secret_hash: fresh.secretHash,
    roles: [...new Set(key.roles)],
    locations: key.locations ? [...new Set(key.locations)] : null,
    allowed_cidrs: key.allowed_cidrs ? [...key.allowed_cidrs] : null,
    created_by: ctx.actor,
    created_at: ctx.now,
    expires_at: key.expiresAt,
    replaces: key.replaces,
  }).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow();
  return { key: fresh.key, api_key: view(row, ctx.now) };
}

function view(row: KeyRow, now: Date) {
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  const status = row.revoked_at ? 'revoked' as const : row.expires_at && new Date(row.expires_at) <= now ? 'expired' as const : 'active' as const;
  return {
    id: row.id, name: row.name, key_prefix: row.key_prefix, roles: row.roles, locations: row.locations, allowed_cidrs: row.allowed_cidrs, status,
    created_by: row.created_by, created_at: new Date(row.created_at).toISOString(), expires_at: iso(row.expires_at), revoked_at: iso(row.revoked_at),
    last_used_at: iso(row.last_used_at), replaces: row.replaces,
  };
}

function parsesAsCidr(text: string): boolean {
  try {
    parseCidrList([text]);
    return true;
  } catch {
    return false;
  }
}
