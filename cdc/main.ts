/**
 * The cdc process: waits to become the active reader (standbys wait on the leader lock), ensures the
 * JetStream stream and the slot, then streams WAL changes to JetStream until stopped. Any failure —
 * NATS down, Postgres restarted, leadership lost — ends the current run; it restarts with backoff and
 * resumes from the slot's confirmed position (JetStream drops the re-sent duplicates). Exposes /healthz,
 * /readyz (ready = active and streaming) and /metrics.
 */
import { stopWhenParentDies } from '../lib/parent-watch.ts';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import pino from 'pino';
import '../db/type-parsers.ts';
import { startProbeServer } from '../lib/probe-server.ts';
import { configOrExit } from '../lib/env-config.ts';
import { cdcConfigSchema } from './config.ts';
import { acquireLeadership } from './leader-lock.ts';
import { createCdcMetrics } from './metrics.ts';
import { CdcReader } from './reader.ts';
import { SlotLost } from './replication-stream.ts';
import { ensureSlot, SchemaMismatch, slotLagBytes } from './slot-setup.ts';
import { ensureCdcStream } from './stream-setup.ts';

const config = configOrExit('cdc', cdcConfigSchema);

const log = pino({ level: config.LOG_LEVEL, base: { service: 'cdc', slot: config.CDC_SLOT } });
const metrics = createCdcMetrics();
const stopping = new AbortController();
let streaming = false;
let current: { reader: CdcReader; nc: NatsConnection } | undefined;

const probe = await startProbeServer({ port: config.CDC_PROBE_PORT, host: config.PROBE_HOST, registry: metrics.registry, ready: () => streaming });
log.info({ probePort: probe.port() }, 'cdc probes listening');

async function runOnce(): Promise<void> {
  const leadership = await acquireLeadership({
    databaseUrl: config.DATABASE_URL, slot: config.CDC_SLOT, pollMs: config.CDC_LEADER_POLL_MS, signal: stopping.signal,
    onWaiting: () => log.info('standby: another reader is active; waiting for the leader lock'),
  });
  metrics.active.set(1);
  log.info('active reader: leader lock acquired');
  let nc: NatsConnection | undefined;
  let reader: CdcReader | undefined;
  const lagClient = new pg.Client({ connectionString: config.DATABASE_URL, application_name: 'stockwire-cdc-lag' });
  // idle between its once-a-second queries: a Postgres restart ended it with an unhandled 'error' that
  // crashed the process (found by test/faults); the replication stream's own error ends this run anyway
  lagClient.on('error', () => {});
  let lagTimer: NodeJS.Timeout | undefined;
  try {
    nc = await connect({ servers: config.NATS_URL.split(','), name: `stockwire-cdc-${process.pid}`, maxReconnectAttempts: -1 });
    await ensureCdcStream(nc, {
      stream: config.CDC_STREAM, subjectPrefix: config.CDC_SUBJECT_PREFIX, maxAgeHours: config.CDC_STREAM_MAX_AGE_HOURS,
      maxBytes: config.CDC_STREAM_MAX_BYTES, duplicateWindowSeconds: config.CDC_DUPLICATE_WINDOW_SECONDS, replicas: config.CDC_STREAM_REPLICAS,
    });
    const { created } = await ensureSlot({ databaseUrl: config.DATABASE_URL, slot: config.CDC_SLOT, publication: config.CDC_PUBLICATION });
    if (created) log.warn('replication slot created: changes before now are not in the stream; run npm run resync to publish current state');
    await lagClient.connect();
    lagTimer = setInterval(() => {
      slotLagBytes(lagClient, config.CDC_SLOT).then((b) => b !== undefined && metrics.lagBytes.set(b)).catch(() => {});
    }, 1000);
    reader = new CdcReader({
      databaseUrl: config.DATABASE_URL, slot: config.CDC_SLOT, publication: config.CDC_PUBLICATION, subjectPrefix: config.CDC_SUBJECT_PREFIX,
      nc, maxInFlight: config.CDC_MAX_IN_FLIGHT, publishTimeoutMs: config.CDC_PUBLISH_TIMEOUT_MS, statusIntervalMs: config.CDC_STATUS_INTERVAL_MS, log, metrics,
    });
    current = { reader, nc };
    streaming = true;
    log.info('streaming changes to JetStream');
    const natsClosed = nc.closed().then((err) => { throw err ?? new Error('NATS connection closed'); });
    const leaderLost = leadership.lost.then((err) => { throw new Error(`leader lock lost: ${err.message}`); });
    await Promise.race([reader.run(), natsClosed, leaderLost]);
    if (!stopping.signal.aborted) throw new Error('replication stream ended');
  } finally {
    streaming = false;
    current = undefined;
    clearInterval(lagTimer);
    await reader?.stop().catch(() => {});
    await nc?.close().catch(() => {});
    await lagClient.end().catch(() => {});
    await leadership.release();
    metrics.active.set(0);
    // a standby reports no lag of its own: only the active reader's figures mean anything
    metrics.lagBytes.set(0);
    metrics.lagSeconds.set(0);
  }
}

async function main() {
  let failures = 0;
  while (!stopping.signal.aborted) {
    const started = Date.now();
    try {
      await runOnce();
    } catch (err) {
      if (stopping.signal.aborted) break;
      if (err instanceof SlotLost || err instanceof SchemaMismatch) {
        log.fatal({ err }, 'cdc cannot continue: the slot is gone or the schema does not match; fix it, then npm run resync');
        process.exit(3);
      }
      failures = Date.now() - started > 30_000 ? 1 : failures + 1;
      const delay = Math.min(10_000, 200 * 2 ** Math.min(failures, 6));
      log.error({ err: { message: (err as Error).message }, retryInMs: delay }, 'cdc run ended; restarting');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

async function shutdown(signal: string) {
  if (stopping.signal.aborted) return;
  log.info({ signal }, 'cdc stopping');
  stopping.abort();
  await current?.reader.stop().catch(() => {});
  await current?.nc.close().catch(() => {});
  await probe.close();
  log.info({ confirmed: current?.reader.confirmedLsn() }, 'cdc stopped');
  process.exit(0);
}
stopWhenParentDies((reason) => void shutdown(reason));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

await main();
