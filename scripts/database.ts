/**
 * Resolves the database for the scripts and the launcher: DATABASE_URL when set (checked for
 * wal_level=logical), otherwise the embedded cluster under DATA_DIR/pg on PG_PORT, database "stockwire".
 */
import path from 'node:path';
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
