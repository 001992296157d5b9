/**
 * The audit log's hash chain. Commands insert audit rows without a hash (so the write path has no global
 * serialisation point); the sealer then links rows in the order they became visible: each sealed row gets
 * the next chain_seq, prev_hash = the previous sealed row's hash, and hash = sha256(prev_hash, row).
 * Verification walks chain_seq and reports the first row whose content or link no longer matches.
 */
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import type { AuditLogTable, Database } from '../../db/schema.ts';
import { canonicalJson } from '../../lib/canonical-json.ts';

export const GENESIS_HASH = '0'.repeat(64);

/** The columns a row's hash covers: everything but the chain columns themselves. */
type AuditRow = Omit<Selectable<AuditLogTable>, 'chain_seq' | 'prev_hash' | 'hash'>;

/** The hash of one audit row at position `seq` after `prevHash`. */
export function auditHash(prevHash: string, seq: string, row: AuditRow): string {
  const content = canonicalJson({ ...row, at: new Date(row.at).toISOString(), seq });
  return createHash('sha256').update(prevHash).update('\n').update(content).digest('hex');
}

const COLUMNS = sql`id, at, actor, action, entity, entity_id, request_id, ip, before, after`;

/** Seals up to `batch` unsealed rows; returns how many. Run by one process at a time (the maintenance leader). */
export async function sealAuditRows(db: Kysely<Database>, batch = 1000): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const head = await sql<{ chain_seq: string; hash: string }>`
      SELECT chain_seq, hash FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1`.execute(trx);
    let seq = BigInt(head.rows[0]?.chain_seq ?? '0');
    let prev = head.rows[0]?.hash ?? GENESIS_HASH;
    const { rows } = await sql<AuditRow>`
      SELECT ${COLUMNS} FROM audit_log WHERE hash IS NULL ORDER BY id LIMIT ${batch} FOR UPDATE`.execute(trx);
    if (rows.length === 0) return 0;
    const ids: string[] = [];
    const seqs: string[] = [];
    const prevs: string[] = [];
    const hashes: string[] = [];
    for (const row of rows) {
      seq += 1n;
      const hash = auditHash(prev, seq.toString(), row);
      ids.push(row.id);
      seqs.push(seq.toString());
      prevs.push(prev);
      hashes.push(hash);
      prev = hash;
    }
    await sql`UPDATE audit_log a SET chain_seq = s.seq, prev_hash = s.prev, hash = s.hash
                FROM unnest(${ids}::bigint[], ${seqs}::bigint[], ${prevs}::text[], ${hashes}::text[]) AS s(id, seq, prev, hash)
               WHERE a.id = s.id`.execute(trx);
    return rows.length;
  });
}

export interface ChainReport {
  ok: boolean;
  checked: number;
  /** first row that does not match, when ok is false */
  broken?: { id: string; chain_seq: string; reason: string };
}

/** Walks the sealed chain in order and reports the first broken link. */
export async function verifyAuditChain(db: Kysely<Database>, pageSize = 5000): Promise<ChainReport> {
  let prev = GENESIS_HASH;
  let expectedSeq = 1n;
  let checked = 0;
  for (;;) {
    const { rows } = await sql<AuditRow & { chain_seq: string; prev_hash: string; hash: string }>`
      SELECT ${COLUMNS}, chain_seq, prev_hash, hash FROM audit_log
       WHERE chain_seq >= ${expectedSeq.toString()} ORDER BY chain_seq LIMIT ${pageSize}`.execute(db);
    if (rows.length === 0) return { ok: true, checked };
    for (const row of rows) {
      const { chain_seq, prev_hash, hash, ...content } = row;
      const broken = (reason: string): ChainReport => ({ ok: false, checked, broken: { id: row.id, chain_seq, reason } });
      if (BigInt(chain_seq) !== expectedSeq) return broken(`chain_seq ${expectedSeq} is missing`);
      if (prev_hash !== prev) return broken('prev_hash does not match the previous row');
      if (auditHash(prev, chain_seq, content) !== hash) return broken('row content does not match its hash');
      prev = hash;
      expectedSeq += 1n;
      checked += 1;
    }
  }
}
