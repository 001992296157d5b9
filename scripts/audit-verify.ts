/**
 * npm run audit:verify: seals any unsealed audit rows, then walks the hash chain and reports the first
 * broken link. Exit 0 when the chain verifies, 1 when it is broken. DATABASE_URL or the embedded cluster.
 */
import { verifyAuditChain, sealAuditRows } from '../api/domain/audit-chain.ts';
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
    process.stdout.write(report.ok
      ? `audit chain ok: ${report.checked} rows verified${sealed ? ` (${sealed} sealed now)` : ''}\n`
      : `audit chain BROKEN at row ${report.broken!.id} (chain_seq ${report.broken!.chain_seq}): ${report.broken!.reason}; ${report.checked} rows before it verify\n`);
  } finally {
    await close();
    await database.stop();
  }
  return broken ? 1 : 0;
});
