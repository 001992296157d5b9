/**
 * npm run audit:verify: seals any unsealed audit rows, then walks the hash chain and reports the first
 * broken link, and checks the chain head against the anchor kept in NATS (rows removed from the end of
 * the chain). Exit 0 when the chain verifies, 1 when it is broken. DATABASE_URL or the embedded cluster;
 * NATS_URL (default the local server) for the anchor — without it the tail check is reported as skipped.
 */
import { connect } from '@nats-io/transport-node';
import type { Kysely } from 'kysely';
import { checkAnchor, natsAnchorStore } from '../api/domain/audit-anchor.ts';
import { verifyAuditChain, sealAuditRows } from '../api/domain/audit-chain.ts';
import type { Database } from '../db/schema.ts';
import { openDatabase } from '../db/connection.ts';
import { runCli } from '../lib/cli.ts';
import { resolveDatabase } from './database.ts';
import { dataDirFromEnv } from './dev-secrets.ts';

await runCli('audit:verify', async () => {
  const database = await resolveDatabase({ dataDir: dataDirFromEnv() });
  const { db, close } = openDatabase({ url: database.url, max: 2 });
  let broken = false;
  try {
    let sealed = 0;
    for (let n = await sealAuditRows(db); n > 0; n = await sealAuditRows(db)) sealed += n;
    const report = await verifyAuditChain(db);
    broken = !report.ok;
    const tail = await checkTail(db, new URL(database.url).pathname.slice(1) || 'stockwire');
    if (!tail.ok) broken = true;
    process.stdout.write(`${tail.message}\n`);
    process.stdout.write(report.ok
      ? `audit chain ok: ${report.checked} rows verified${sealed ? ` (${sealed} sealed now)` : ''}\n`
      : `audit chain BROKEN at row ${report.broken!.id} (chain_seq ${report.broken!.chain_seq}): ${report.broken!.reason}; ${report.checked} rows before it verify\n`);
  } finally {
    await close();
    await database.stop();
  }
  return broken ? 1 : 0;
});

/** Compares the chain's end with the anchor in NATS. */
async function checkTail(db: Kysely<Database>, key: string): Promise<{ ok: boolean; message: string }> {
  const url = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  const nc = url ? await connect({ servers: url.split(','), reconnect: false, timeout: 3000 }).catch(() => undefined) : undefined;
  if (!nc) return { ok: true, message: `audit anchor: not checked (no NATS at ${url || 'NATS_URL'}): rows removed from the end of the chain would go unnoticed` };
  try {
    const anchor = await natsAnchorStore({ nats: () => nc, key, bucket: process.env.AUDIT_ANCHOR_BUCKET }).latest();
    if (!anchor) return { ok: true, message: 'audit anchor: none recorded yet' };
    const result = await checkAnchor(db, anchor);
    return result.ok
      ? { ok: true, message: `audit anchor ok: the chain still holds chain_seq ${anchor.chain_seq} (anchored ${anchor.at})` }
      : { ok: false, message: `audit chain TRUNCATED: ${result.reason}` };
  } finally {
    await nc.close();
  }
}
