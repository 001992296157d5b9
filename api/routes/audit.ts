/**
 * The audit log for admins: one row per command (actor, action, entity, before/after, request id, IP),
 * newest first, with its place in the hash chain (rows are sealed shortly after they are written;
 * `npm run audit:verify` walks the chain).
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, RouteDeps } from '../context.ts';
import { protectedRoute } from './route-kit.ts';
import { jsonResponse } from './schemas.ts';

const AuditEntry = z.object({
  id: z.string(), at: z.string(), actor: z.string(), action: z.string(), entity: z.string(), entity_id: z.string(),
  request_id: z.string().nullable(), ip: z.string().nullable(), before: z.unknown(), after: z.unknown(),
  chain_seq: z.string().nullable().openapi({ description: 'position in the hash chain; null until sealed' }),
  hash: z.string().nullable(),
}).openapi('AuditEntry');

const AuditQuery = z.object({
  entity: z.string().min(1).max(64).optional(),
  entity_id: z.string().min(1).max(200).optional(),
  actor: z.string().min(1).max(200).optional(),
  before_id: z.coerce.number().int().positive().optional().openapi({ description: 'page cursor: entries older than this id' }),
  limit: z.coerce.number().int().min(1).max(500).default(100),
}).refine((q) => q.entity_id === undefined || q.entity !== undefined, { message: 'entity_id needs entity', path: ['entity_id'] });

const routes = {
  list: protectedRoute('audit:read', {
    method: 'get', path: '/audit', summary: 'Audit log entries, newest first (filter by entity, entity and id, or actor)',
    request: { query: AuditQuery },
    responses: { 200: jsonResponse('audit entries', z.object({ entries: z.array(AuditEntry), next_before_id: z.string().nullable() })) },
  }),
};

export function auditRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.list, async (c) => {
    const q = c.req.valid('query');
    // each filter combination has an index: (entity, entity_id, id), (actor, id), or the primary key
    let query = deps.db.selectFrom('audit_log')
      .select(['id', 'at', 'actor', 'action', 'entity', 'entity_id', 'request_id', 'ip', 'before', 'after', 'chain_seq', 'hash'])
      .orderBy('id', 'desc').limit(q.limit);
    if (q.entity) query = query.where('entity', '=', q.entity);
    if (q.entity_id) query = query.where('entity_id', '=', q.entity_id);
    if (q.actor) query = query.where('actor', '=', q.actor);
    if (q.before_id) query = query.where('id', '<', String(q.before_id));
    const rows = await query.execute();
    const entries = rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
    const last = entries.length === q.limit ? entries[entries.length - 1]!.id : null;
    return c.json({ entries, next_before_id: last }, 200);
  });

  return app;
}
