/**
 * npm run keys:rotate [-- --dry-run] [--batch 500]: re-encrypts every order's customer contact with the
 * active PII key (the first in PII_KEYS), so an old key can then be removed from PII_KEYS. Rotation:
 * put the new key first and keep the old one after it, restart the API (new values use the new key, old
 * ones still decrypt), run this, then drop the old key.
 *
 * Works in batches, each one transaction: rows locked with FOR UPDATE SKIP LOCKED (an order being
 * changed right now is picked up by the next run), decrypted with whichever configured key sealed them,
 * sealed again with the active key, and one audit row per batch recording the count (never the data).
 * Idempotent: rows already under the active key are skipped. Re-encryption is a change of the row, so
 * its version moves on. Exit 1 when some value cannot be decrypted with any configured key.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import { piiKeys } from '../api/config.ts';
import { createPiiCipher } from '../api/domain/pii-cipher.ts';
import '../db/type-parsers.ts';
import { runCli } from '../lib/cli.ts';
import { configOrExit } from '../lib/env-config.ts';
import { resolveDatabase } from './database.ts';
import { dataDirFromEnv, loadDevSecrets } from './dev-secrets.ts';

const { values } = parseArgs({ options: { 'dry-run': { type: 'boolean', default: false }, batch: { type: 'string', default: '500' } } });

await runCli('keys:rotate', async () => {
  const dataDir = dataDirFromEnv();
  const secrets = process.env.PII_KEYS ? undefined : await loadDevSecrets(dataDir);
  const config = configOrExit('keys:rotate', z.object({ PII_KEYS: piiKeys }), { ...process.env, PII_KEYS: process.env.PII_KEYS ?? secrets!.PII_KEYS });
  const cipher = createPiiCipher(config.PII_KEYS);
  const batch = Math.max(1, Math.min(10_000, Number(values.batch) || 500));
  const activePrefix = `v1.${cipher.activeKeyId}.`;
  const database = await resolveDatabase({ dataDir });
  const pool = new pg.Pool({ connectionString: database.url, max: 1, application_name: 'stockwire-keys-rotate' });
  let rotated = 0;
  let unreadable = 0;
  try {
    const { rows: [todo] } = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM orders WHERE customer_contact IS NOT NULL AND left(customer_contact, $1) <> $2', [activePrefix.length, activePrefix]);
    process.stdout.write(`${todo!.n} order contacts are not under the active key ${cipher.activeKeyId}${values['dry-run'] ? ' (dry run: nothing changed)' : ''}\n`);
    if (values['dry-run']) return 0;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ id: string; customer_contact: string }>(
          `SELECT id, customer_contact FROM orders
            WHERE id > $1 AND customer_contact IS NOT NULL AND left(customer_contact, $2) <> $3
            ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED`, [after, activePrefix.length, activePrefix, batch]);
        if (rows.length === 0) {
          await client.query('COMMIT');
          break;
        }
        after = rows[rows.length - 1]!.id;
        const ids: string[] = [];
        const sealed: string[] = [];
        for (const row of rows) {
          try {
            sealed.push(cipher.encrypt(cipher.decrypt(row.customer_contact)));
            ids.push(row.id);
          } catch {
            unreadable += 1;
            process.stderr.write(`order ${row.id}: contact sealed with a key not in PII_KEYS; left as it is\n`);
          }
        }
        await client.query(
          `UPDATE orders o SET customer_contact = v.sealed FROM unnest($1::uuid[], $2::text[]) AS v(id, sealed) WHERE o.id = v.id`, [ids, sealed]);
        await client.query(
          `INSERT INTO audit_log (actor, action, entity, entity_id, before, after)
           VALUES ('keys:rotate', 'pii.rotate', 'orders', $1, NULL, $2)`,
          [`${rows[0]!.id}..${after}`, JSON.stringify({ rotated: ids.length, key: cipher.activeKeyId })]);
        await client.query('COMMIT');
        rotated += ids.length;
        process.stdout.write(`  ${rotated} re-encrypted\n`);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    }
    // webhook endpoint secrets are sealed with the same keys (few rows: one transaction)
    const webhooks = await resealWebhookSecrets(pool, cipher, activePrefix);
    unreadable += webhooks.unreadable;
    process.stdout.write(`done: ${rotated} order contacts and ${webhooks.rotated} webhook secrets re-encrypted with ${cipher.activeKeyId}${unreadable ? `, ${unreadable} unreadable (see above)` : ''}\n`);
  } finally {
    await pool.end();
    await database.stop();
  }
  return unreadable ? 1 : 0;
});

async function resealWebhookSecrets(pool: pg.Pool, cipher: ReturnType<typeof createPiiCipher>, activePrefix: string) {
  const client = await pool.connect();
  let rotated = 0;
  let unreadable = 0;
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: string; secret: string }>(
      'SELECT id, secret FROM webhook_endpoints WHERE left(secret, $1) <> $2 FOR UPDATE', [activePrefix.length, activePrefix]);
    for (const row of rows) {
      try {
        await client.query('UPDATE webhook_endpoints SET secret = $2 WHERE id = $1', [row.id, cipher.encrypt(cipher.decrypt(row.secret))]);
        rotated += 1;
      } catch {
        unreadable += 1;
        process.stderr.write(`webhook endpoint ${row.id}: secret sealed with a key not in PII_KEYS; left as it is\n`);
      }
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
  return { rotated, unreadable };
}
