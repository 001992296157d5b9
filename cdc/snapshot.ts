/**
 * Backfill: re-states the current rows of the published tables as `op: "snapshot"` events, read in one
 * REPEATABLE READ snapshot, so a new or repaired projector can rebuild from scratch. Events carry the
 * snapshot's WAL position as their LSN and go through the same windowed publisher; projectors apply them
 * with the same version comparison as live changes, so a snapshot racing live traffic cannot regress rows.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import '../db/type-parsers.ts';
import { jsonRow, subjectFor, type SnapshotEvent } from './envelope.ts';
import { WindowedPublisher } from './windowed-publisher.ts';

export const SNAPSHOT_TABLES = ['locations', 'products', 'bundle_components', 'stock_levels', 'lots', 'orders'] as const;

/** Columns of a published table as the publication lists them (personal data is never among them). */
async function publishedColumns(client: pg.Client, publication: string, table: string): Promise<string[]> {
  const { rows } = await client.query<{ attnames: string[] }>(
    'SELECT attnames::text[] AS attnames FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3', [publication, 'public', table]);
  if (!rows[0]) throw new Error(`table ${table} is not in publication ${publication}`);
  return rows[0].attnames;
}

export interface SnapshotResult {
  lsn: string;
  events: number;
  byTable: Record<string, number>;
}

/** Publishes every current row of `tables` as snapshot events; returns the snapshot position and counts. */
export async function publishSnapshot(props: {
  databaseUrl: string;
  nc: NatsConnection;
  subjectPrefix: string;
  publication: string;
  tables?: readonly string[];
  onProgress?: (table: string, rows: number) => void;
}): Promise<SnapshotResult> {
  const client = new pg.Client({ connectionString: props.databaseUrl, application_name: 'stockwire-resync' });
  await client.connect();
  const publisher = new WindowedPublisher({ nc: props.nc, maxInFlight: 2048 });
  const encoder = new TextEncoder();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query<{ lsn: string; tx: string }>('SELECT pg_current_wal_lsn()::text AS lsn, txid_current_if_assigned()::text AS tx');
    const lsn = rows[0]!.lsn;
    const commitTime = new Date().toISOString();
    const byTable: Record<string, number> = {};
    let index = 0;
    let pendingEvent: SnapshotEvent | undefined;
    const flushPending = async (last: boolean) => {
      if (!pendingEvent) return;
      pendingEvent.source.last = last;
      const e = pendingEvent;
      pendingEvent = undefined;
      await publisher.room();
      publisher.publish(subjectFor(props.subjectPrefix, e.table, 'snapshot'), encoder.encode(JSON.stringify(e)), `snapshot:${lsn}:${e.source.index}`, () => {});
    };
    for (const table of props.tables ?? SNAPSHOT_TABLES) {
      const columns = await publishedColumns(client, props.publication, table);
      const cursor = `snap_${table}`;
      await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${columns.map((c) => pg.escapeIdentifier(c)).join(', ')} FROM ${pg.escapeIdentifier(table)}`);
      byTable[table] = 0;
      for (;;) {
        const batch = await client.query(`FETCH 2000 FROM ${cursor}`);
        if (batch.rows.length === 0) break;
        for (const row of batch.rows) {
          await flushPending(false);
          pendingEvent = { op: 'snapshot', table, before: null, after: jsonRow(row), source: { lsn, commitLsn: lsn, txId: 0, commitTime, index: index++, last: false } };
          byTable[table] += 1;
        }
        props.onProgress?.(table, byTable[table]);
      }
      await client.query(`CLOSE ${cursor}`);
    }
    await flushPending(true);
    await publisher.flush();
    await client.query('COMMIT');
    return { lsn, events: index, byTable };
  } finally {
    publisher.close();
    await client.end().catch(() => {});
  }
}
