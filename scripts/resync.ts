/**
 * npm run resync [-- --tables stock_levels,lots]: publish the current state of the published tables as
 * snapshot events to the CDC stream (DATABASE_URL or the embedded cluster; NATS_URL; CDC_STREAM,
 * CDC_SUBJECT_PREFIX, CDC_PUBLICATION as for cdc). Projectors rebuild from them.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { runCli } from '../lib/cli.ts';
import { publishSnapshot, SNAPSHOT_TABLES } from '../cdc/snapshot.ts';
import { resolveDatabase } from './database.ts';
import { dataDirFromEnv } from './dev-secrets.ts';

const { values } = parseArgs({ options: { tables: { type: 'string' } } });
const tables = values.tables ? values.tables.split(',') : [...SNAPSHOT_TABLES];
const log = pino({ base: { service: 'resync' } });
await runCli('resync', async () => {
  const database = await resolveDatabase({ dataDir: dataDirFromEnv() });
  const nc = await connect({ servers: (process.env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',') });
  try {
    const stream = process.env.CDC_STREAM ?? 'CDC';
    await (await jetstreamManager(nc)).streams.info(stream).catch(() => {
      throw new Error(`stream ${stream} does not exist: start the cdc reader once (npm start) before a resync`);
    });
    const result = await publishSnapshot({
      databaseUrl: database.url, nc, subjectPrefix: process.env.CDC_SUBJECT_PREFIX ?? 'cdc', publication: process.env.CDC_PUBLICATION ?? 'stockwire', tables,
      onProgress: (table, rows) => log.info({ table, rows }, 'snapshot progress'),
    });
    log.info(result, 'snapshot published');
  } finally {
    await nc.close();
    await database.stop();
  }
});
