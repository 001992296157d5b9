/**
 * Read-your-writes across projections: every successful write response carries X-Stockwire-LSN, a WAL
 * position read after the command committed (so it is at or past the commit record). A projection that
 * has applied this position shows the write; GET /v1/stock/{sku}/{location}?min_lsn= waits for it.
 */
import type { MiddlewareHandler } from 'hono';
import { sql } from 'kysely';
import type { SqlRunner } from '../../db/sql-runner.ts';
import type { AppEnv } from '../context.ts';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function commitPosition(props: { run: SqlRunner }): MiddlewareHandler<AppEnv> {
  return async function commitPositionMiddleware(c, next) {
    await next();
    if (!WRITES.has(c.req.method) || c.res.status >= 300) return;
    const [row] = await props.run(sql<{ lsn: string }>`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
    if (row) c.header('X-Stockwire-LSN', row.lsn);
  };
}
