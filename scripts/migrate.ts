/**
 * npm run migrate (up, idempotent) / npm run migrate:down [-- --steps N]. Uses DATABASE_URL, or starts
 * the embedded cluster for the duration of the command. MIGRATIONS_DIR points at another directory of
 * migrations (the runbook test rehearses a rollback on a fixed pair of them).
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { runCli } from '../lib/cli.ts';
import { openDatabase } from '../db/connection.ts';
import { migrateDown, migrateUp } from '../db/migrator.ts';
import { resolveDatabase } from './database.ts';
import { dataDirFromEnv } from './dev-secrets.ts';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { steps: { type: 'string' } } });
const direction = positionals[0] ?? 'up';
const steps = Number(values.steps ?? 1);
if (!['up', 'down'].includes(direction) || !Number.isInteger(steps) || steps < 1) {
  process.stderr.write('usage: npm run migrate  |  npm run migrate:down [-- --steps N]  (N a whole number ≥ 1)\n');
  process.exit(2);
}
const log = pino({ base: { service: 'migrate' } });
await runCli('migrate', async () => {
  const database = await resolveDatabase({ dataDir: dataDirFromEnv() });
  const { pool, close } = openDatabase({ url: database.url, max: 2 });
  try {
    const result = direction === 'down'
      ? await migrateDown({ pool, steps, log, dir: process.env.MIGRATIONS_DIR || undefined })
      : await migrateUp({ pool, log, dir: process.env.MIGRATIONS_DIR || undefined });
    log.info(result, result.applied.length || result.reverted.length ? 'migrations done' : 'schema already up to date');
  } finally {
    await close();
    await database.stop();
  }
});
