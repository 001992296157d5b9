/** npm run seed: loads the demo catalog into DATABASE_URL or the embedded cluster (idempotent). */
import pino from 'pino';
import { runCli } from '../lib/cli.ts';
import { openDatabase } from '../db/connection.ts';
import { migrateUp } from '../db/migrator.ts';
import { createCommandRunner } from '../api/domain/command-runner.ts';
import { seedDemoCatalog } from './demo-catalog.ts';
import { resolveDatabase } from './database.ts';
import { dataDirFromEnv } from './dev-secrets.ts';

const log = pino({ base: { service: 'seed' } });
await runCli('seed', async () => {
  const database = await resolveDatabase({ dataDir: dataDirFromEnv() });
  const { db, pool, close } = openDatabase({ url: database.url, max: 4 });
  try {
    await migrateUp({ pool, log });
    log.info(await seedDemoCatalog({ db, runCommand: createCommandRunner({ db }) }), 'demo catalog seeded');
  } finally {
    await close();
    await database.stop();
  }
});
