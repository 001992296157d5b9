/** GET /v1/sync/status: where the CDC slot and each projector stand, and their lag. */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, RouteDeps } from '../context.ts';
import { protectedRoute } from './route-kit.ts';
import { jsonResponse } from './schemas.ts';

const ProjectorStatus = z.object({
  name: z.string(), applied_lsn: z.string().nullable(), commit_time: z.string().nullable(), applied_at: z.string().nullable(),
  lag_ms: z.number().nullable(), stream_seq: z.number(), dead_letters: z.number(),
});

const SyncStatus = z.object({
  current_lsn: z.string(),
  slot: z.object({ name: z.string(), active: z.boolean(), confirmed_flush_lsn: z.string().nullable(), lag_bytes: z.number().nullable() }).nullable(),
  projectors: z.array(ProjectorStatus),
  projectors_known: z.boolean().openapi({ description: 'false when NATS could not be read' }),
}).openapi('SyncStatus');

const statusRoute = protectedRoute('sync:read', {
  method: 'get', path: '/sync/status', summary: 'CDC slot position and lag, and each projector\'s applied position and lag',
  responses: { 200: jsonResponse('sync status', SyncStatus) },
});

export function syncRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });
  app.openapi(statusRoute, async (c) => {
    if (!deps.syncStatus) return c.json({ current_lsn: '0/0', slot: null, projectors: [], projectors_known: false }, 200);
    return c.json(await deps.syncStatus(), 200);
  });
  return app;
}
