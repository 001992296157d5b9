/**
 * Background work every API replica offers but only one performs at a time: expiring reservations whose
 * TTL ran out, sealing the audit chain, and pruning old idempotency keys. Leadership is a session-level
 * Postgres advisory lock held on a dedicated connection; if that connection drops, another replica's next
 * tick takes over.
 */
import pg from 'pg';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.ts';
import { anchorHead, type AnchorStore } from './domain/audit-anchor.ts';
import { sealAuditRows } from './domain/audit-chain.ts';
import type { RunCommand } from './domain/command-runner.ts';
import { dueForExpiry, transitionOrder } from './domain/orders.ts';
import { ApiError } from './errors.ts';
import type { ApiMetrics } from './metrics.ts';

const LEADER_LOCK_KEY = 0x5707_0002;
const SWEEPER_ACTOR = 'system:expiry-sweeper';
const IDEMPOTENCY_RETENTION_HOURS = 24;

export interface MaintenanceProps {
  databaseUrl: string;
  db: Kysely<Database>;
  runCommand: RunCommand;
  log: Logger;
  clock: () => Date;
  intervalMs: number;
  metrics?: ApiMetrics | undefined;
  /** where the chain head is recorded after each seal (outside Postgres) */
  anchor?: AnchorStore | undefined;
}

/** Expires every due reservation (one order per transaction); returns how many were released. */
export async function expireDueOrders(props: Pick<MaintenanceProps, 'db' | 'runCommand' | 'clock' | 'log' | 'metrics'>, limit = 500): Promise<number> {
  const now = props.clock();
  const ids = await props.db.transaction().execute((trx) => dueForExpiry(trx, now, limit));
  let expired = 0;
  for (const id of ids) {
    const requestId = `sweep-${id}`;
    try {
      await props.runCommand({ actor: SWEEPER_ACTOR, requestId }, (trx) =>
        transitionOrder({ trx, actor: SWEEPER_ACTOR, requestId, now }, id, 'expired'));
      expired += 1;
    } catch (err) {
      // confirmed or cancelled between the scan and the lock: nothing to release
      if (!(err instanceof ApiError && err.code === 'invalid_transition')) throw err;
    }
  }
  if (expired) props.log.info({ expired }, 'reservations expired');
  props.metrics?.expired.inc(expired);
  return expired;
}

export function createMaintenance(props: MaintenanceProps) {
  const log = props.log.child({ component: 'maintenance' });
  let leader: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  async function holdLeadership(): Promise<boolean> {
    if (leader) return true;
    const client = new pg.Client({ connectionString: props.databaseUrl, application_name: 'stockwire-maintenance' });
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK_KEY]);
      if (!rows[0]?.ok) {
        await client.end();
        return false;
      }
      client.on('end', () => {
        if (leader === client) leader = undefined;
      });
      leader = client;
      log.info('maintenance leadership acquired');
      return true;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  }

  async function tick(): Promise<void> {
    if (!(await holdLeadership())) return;
    props.metrics?.sweeps.inc();
    await expireDueOrders(props);
    let sealed = 0;
    for (let n = await sealAuditRows(props.db); n > 0; n = await sealAuditRows(props.db)) sealed += n;
    if (sealed && props.anchor) await anchorHead(props.db, props.anchor, props.clock());
    await sql`DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${IDEMPOTENCY_RETENTION_HOURS})`.execute(props.db);
  }

  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick()
        .catch((err) => log.error({ err }, 'maintenance tick failed; retrying next interval'))
        .finally(schedule);
    }, props.intervalMs);
  }

  return {
    /** Starts ticking every intervalMs. */
    start() {
      stopped = false;
      schedule();
    },
    /** Runs one tick now (tests, shutdown). */
    runOnce: tick,
    /** Stops ticking, waits for a running tick and gives up leadership. */
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      await leader?.end().catch(() => {});
      leader = undefined;
    },
  };
}
