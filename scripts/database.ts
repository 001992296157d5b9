/**
 * Resolves the database for the scripts and the launcher: DATABASE_URL when set (checked for
 * wal_level=logical), otherwise the embedded cluster under DATA_DIR/pg on PG_PORT, database "stockwire".
 * On the embedded cluster the services then connect as the least-privilege roles of migration 0004.
 */
import path from 'node:path';
import pg from 'pg';
import { assertLogicalWal, ensureDatabase, startEmbeddedCluster } from '../db/cluster.ts';
import { loadDevSecrets } from './dev-secrets.ts';

export interface ResolvedDatabase {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

export async function resolveDatabase(props: { dataDir: string; env?: NodeJS.ProcessEnv; onLog?: (line: string) => void }): Promise<ResolvedDatabase> {
  const env = props.env ?? process.env;
  if (env.DATABASE_URL) {
    await assertLogicalWal(env.DATABASE_URL);
    return { url: env.DATABASE_URL, embedded: false, stop: async () => {} };
  }
  const port = Number(env.PG_PORT ?? 54329);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`PG_PORT must be a port number, got ${env.PG_PORT}`);
  const secrets = await loadDevSecrets(props.dataDir);
  const cluster = await startEmbeddedCluster({ dataDir: path.join(props.dataDir, 'pg'), port, password: secrets.PG_PASSWORD, onLog: props.onLog });
  const url = await ensureDatabase(cluster.adminUrl, 'stockwire');
  return { url, embedded: true, stop: cluster.stop };
}

export interface ServiceRoleUrls {
  /** stockwire_app: the API and the sheet projectors */
  app: string;
  /** stockwire_replication: the cdc reader */
  replication: string;
}

/**
 * Gives the roles of migration 0004 their passwords (run as the owner, after migrating) and returns the
 * URLs the services connect with: the owner's URL with the role's name and password.
 */
export async function prepareServiceRoles(props: { pool: pg.Pool; ownerUrl: string; passwords: { app: string; replication: string } }): Promise<ServiceRoleUrls> {
  const urlFor = async (role: string, password: string) => {
    // ALTER ROLE takes no bind parameters
    await props.pool.query(`ALTER ROLE ${pg.escapeIdentifier(role)} WITH LOGIN PASSWORD ${pg.escapeLiteral(password)}`);
    const url = new URL(props.ownerUrl);
    url.username = role;
    url.password = password;
    return url.toString();
  };
  return {
    app: await urlFor('stockwire_app', props.passwords.app),
    replication: await urlFor('stockwire_replication', props.passwords.replication),
  };
}
