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

/** Creates a pool of at most `max` connections and a Kysely instance using it. */
export function openDatabase(props: { url: string; max?: number; applicationName?: string }): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: props.url,
    max: props.max ?? 20,
    application_name: props.applicationName ?? 'stockwire',
  });
  // an idle client's error (server restart) must not crash the process; the next query reconnects
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // kysely only ends the pool it has used; end it ourselves when only raw queries ran (migrations)
  const close = async () => {
    await db.destroy();
    if (!pool.ended) await pool.end();
  };
  return { db, pool, close };
}
