/**
 * Makes sure the logical replication slot exists (created on first start; it then retains WAL until the
 * reader confirms it) and that the publication the migrations create is there. Also reads slot lag.
 */
import pg from 'pg';

export class SchemaMismatch extends Error {
  readonly code = 'schema_mismatch';
}

export async function ensureSlot(props: { databaseUrl: string; slot: string; publication: string }): Promise<{ created: boolean }> {
  const client = new pg.Client({ connectionString: props.databaseUrl });
  await client.connect();
  try {
    const pub = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [props.publication]);
    if (!pub.rowCount) throw new SchemaMismatch(`publication ${props.publication} does not exist: run npm run migrate first`);
    const slot = await client.query<{ plugin: string }>('SELECT plugin FROM pg_replication_slots WHERE slot_name = $1', [props.slot]);
    if (slot.rows[0]) {
      if (slot.rows[0].plugin !== 'pgoutput') throw new SchemaMismatch(`slot ${props.slot} uses ${slot.rows[0].plugin}, not pgoutput`);
      return { created: false };
    }
    await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [props.slot]);
    return { created: true };
  } catch (err) {
    // two readers racing to create the slot: the loser simply uses it
    if ((err as { code?: string }).code === '42710') return { created: false };
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}

/** WAL bytes the slot still holds back (server position − confirmed position). */
export async function slotLagBytes(client: pg.Client | pg.Pool, slot: string): Promise<number | undefined> {
  const { rows } = await client.query<{ lag: string | null }>(
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return rows[0]?.lag == null ? undefined : Number(rows[0].lag);
}
