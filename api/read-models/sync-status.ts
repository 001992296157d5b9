/**
 * What GET /v1/sync/status reports: the slot's confirmed position and lag (from Postgres), the server's
 * current WAL position, and each projector's applied position and lag (from the NATS KV bucket the
 * projectors write). NATS is only read here; the API never writes to it.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import type { ProjectorStatus } from '../../projectors/runtime/projector-runtime.ts';
import { STATUS_BUCKET } from '../../projectors/runtime/projector-process.ts';

export interface SyncStatus {
  current_lsn: string;
  slot: { name: string; active: boolean; confirmed_flush_lsn: string | null; lag_bytes: number | null } | null;
  projectors: ProjectorStatus[];
  projectors_known: boolean;
}

export function createSyncStatusReader(props: { db: Kysely<Database>; slot: string; stream: string; nats: () => NatsConnection | undefined }) {
  let bucket: Promise<KV> | undefined;

  async function projectors(): Promise<ProjectorStatus[] | undefined> {
    const nc = props.nats();
    if (!nc) return undefined;
    try {
      bucket ??= new Kvm(nc).open(STATUS_BUCKET);
      const kv = await bucket;
      const out: ProjectorStatus[] = [];
      for await (const key of await kv.keys(`${props.stream}.>`)) {
        const entry = await kv.get(key);
        if (entry?.value.length) out.push(JSON.parse(entry.string()) as ProjectorStatus);
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      bucket = undefined;
      return undefined;
    }
  }

  return async function readSyncStatus(): Promise<SyncStatus> {
    const [{ rows: wal }, { rows: slots }, list] = await Promise.all([
      sql<{ lsn: string }>`SELECT pg_current_wal_lsn()::text AS lsn`.execute(props.db),
      sql<{ active: boolean; confirmed: string | null; lag: string | null }>`
        SELECT active, confirmed_flush_lsn::text AS confirmed, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
          FROM pg_replication_slots WHERE slot_name = ${props.slot}`.execute(props.db),
      projectors(),
    ]);
    const slot = slots[0];
    return {
      current_lsn: wal[0]!.lsn,
      slot: slot ? { name: props.slot, active: slot.active, confirmed_flush_lsn: slot.confirmed, lag_bytes: slot.lag === null ? null : Number(slot.lag) } : null,
      projectors: list ?? [],
      projectors_known: list !== undefined,
    };
  };
}

export type SyncStatusReader = ReturnType<typeof createSyncStatusReader>;
