/**
 * An anchor for the audit chain outside Postgres. The hash chain shows any change to a sealed row and
 * any row removed from the middle, but not rows removed from its end: the shortened chain still
 * verifies. So after each seal the maintenance leader records the chain head (chain_seq, hash) in a
 * NATS KV bucket with history; audit:verify checks that the database still holds that row with that
 * hash. Whoever truncates the table must now also rewrite another system's history.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';

export const AUDIT_ANCHOR_BUCKET = 'stockwire_audit_anchor';

export interface ChainHead {
  chain_seq: string;
  hash: string;
  at: string;
}

export interface AnchorStore {
  record(head: ChainHead): Promise<void>;
  latest(): Promise<ChainHead | undefined>;
}

/** The anchor in a NATS KV bucket (key = the database name, so several databases can share a server). */
export function natsAnchorStore(props: { nats: () => NatsConnection | undefined; key: string; bucket?: string }): AnchorStore {
  let kv: KV | undefined;
  const key = props.key.replace(/[^A-Za-z0-9_-]/g, '_');
  const bucket = props.bucket ?? AUDIT_ANCHOR_BUCKET;
  /** writers create the bucket; readers only open it (a read must not create anything) */
  async function open(create: boolean): Promise<KV | undefined> {
    const nc = props.nats();
    if (!nc) return undefined;
    if (!kv) kv = create ? await new Kvm(nc).create(bucket, { history: 64 }) : await new Kvm(nc).open(bucket).catch(() => undefined);
    return kv;
  }
  return {
    async record(head) {
      await (await open(true))?.put(key, JSON.stringify(head));
    },
    async latest() {
      const store = await open(false);
      // a bucket that was never written is "no anchor yet", not an error
      const entry = await store?.get(key).catch((err: Error) => {
        if (/not found/i.test(err.message)) return null;
        throw err;
      });
      return entry && entry.length > 0 ? (entry.json() as ChainHead) : undefined;
    },
  };
}

/** The newest sealed row, or undefined for an empty chain. */
export async function chainHead(db: Kysely<Database>): Promise<Omit<ChainHead, 'at'> | undefined> {
  const { rows } = await sql<{ chain_seq: string; hash: string }>`
    SELECT chain_seq::text AS chain_seq, hash FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1`.execute(db);
  return rows[0];
}

/** Does the database still hold the anchored head? */
export async function checkAnchor(db: Kysely<Database>, anchor: ChainHead): Promise<{ ok: boolean; reason?: string }> {
  const { rows } = await sql<{ hash: string }>`SELECT hash FROM audit_log WHERE chain_seq = ${anchor.chain_seq}`.execute(db);
  if (rows.length === 0) {
    const head = await chainHead(db);
    return { ok: false, reason: `the anchor (recorded ${anchor.at}) says the chain reached chain_seq ${anchor.chain_seq}, but the database ends at ${head?.chain_seq ?? 0}: rows were removed from its end` };
  }
  if (rows[0]!.hash !== anchor.hash) return { ok: false, reason: `the row at chain_seq ${anchor.chain_seq} does not have the anchored hash` };
  return { ok: true };
}

/** Records the current head in the anchor store. */
export async function anchorHead(db: Kysely<Database>, anchor: AnchorStore, now: Date): Promise<void> {
  const head = await chainHead(db);
  if (head) await anchor.record({ ...head, at: now.toISOString() });
}
