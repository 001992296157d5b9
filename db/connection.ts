/**
 * Opens the Postgres pool and the typed Kysely handle on top of it. Each process's entry point calls this
 * once and passes the result down; nothing else opens connections.
 */
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import type { Database } from './schema.ts';
import './type-parsers.ts';

export interface DatabaseHandle {
  db: Kysely<Database>;
  pool: pg.Pool;
  close(): Promise<void>;
}

/**
 * Keeps a Postgres restart from crashing the process through `pool`: an idle client's error is dropped
 * (the next query reconnects), and so is one on a client lent out of the pool — pg-pool listens only while
 * a client is idle, so a lent-out client the server terminated (57P01 on a fast shutdown, or its socket
 * closing) emitted an unhandled 'error' (found by test/faults: the API and the sheet mirrors died on a
 * Postgres restart). The statement in flight still fails, and the pool drops the broken client on release.
 */
export function survivePostgresRestarts(pool: pg.Pool): pg.Pool {
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Creates a pool of at most `max` connections and a Kysely instance using it. */
export function openDatabase(props: { url: string; max?: number; applicationName?: string }): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: props.url,
    max: props.max ?? 20,
    application_name: props.applicationName ?? 'stockwire',
  });
  survivePostgresRestarts(pool);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // kysely only ends the pool it has used; end it ourselves when only raw queries ran (migrations)
  const close = async () => {
    await db.destroy();
    if (!pool.ended) await pool.end();
  };
  return { db, pool, close };
}
