/**
 * What the CDC tests need beyond a database: the real cdc reader and projector processes (child
 * processes, so SIGKILL is real), a private nats-server when a test restarts NATS, an in-process
 * counting projector, and clean-up of everything a test created on the shared NATS and Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import type { ChangeEvent } from '../cdc/envelope.ts';
import { messageIdFor } from '../cdc/envelope.ts';
import { ProjectorRuntime } from '../projectors/runtime/projector-runtime.ts';
import { STATUS_BUCKET } from '../projectors/runtime/projector-process.ts';
import { portOpen } from '../scripts/nats-server.ts';
import { freePort } from './free-port.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
export const SHARED_NATS = 'nats://127.0.0.1:4222';
export const SHARED_REDIS = 'redis://127.0.0.1:6379';

/** Polls `fn` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ManagedProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const processes: ManagedProcess[] = [];

/** Runs a TypeScript entry point as a child process with extra environment. */
export function startNodeProcess(entry: string, env: Record<string, string>): ManagedProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-50_000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-50_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const handle: ManagedProcess = {
    child,
    output: () => out,
    exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  processes.push(handle);
  return handle;
}

/** SIGTERM, then SIGKILL if `p` has not exited after `graceMs`. */
export async function stopProcess(p: ManagedProcess, graceMs = 8000): Promise<void> {
  const timer = setTimeout(() => void p.kill('SIGKILL'), graceMs);
  await p.kill('SIGTERM');
  clearTimeout(timer);
}

/** Kills every process this file started (by PID, SIGKILL) — for afterAll. */
export async function killAll(): Promise<void> {
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
}

export interface PipelineNames {
  slot: string;
  stream: string;
  prefix: string;
  redisPrefix: string;
}

export function uniqueNames(tag: string): PipelineNames {
  const id = `${tag}${process.pid}${Math.random().toString(36).slice(2, 7)}`.toLowerCase().replace(/[^a-z0-9]/g, '');
  return { slot: `s_${id}`, stream: `S_${id}`.toUpperCase(), prefix: `p${id}`, redisPrefix: `t:${id}:` };
}

export function cdcEnv(databaseUrl: string, names: PipelineNames, natsUrl = SHARED_NATS): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl, NATS_URL: natsUrl, CDC_SLOT: names.slot, CDC_STREAM: names.stream,
    CDC_SUBJECT_PREFIX: names.prefix, CDC_PROBE_PORT: '0', CDC_LEADER_POLL_MS: '100', CDC_STATUS_INTERVAL_MS: '50',
  };
}

export function projectorEnv(names: PipelineNames, natsUrl = SHARED_NATS): Record<string, string> {
  return { NATS_URL: natsUrl, CDC_STREAM: names.stream, CDC_SUBJECT_PREFIX: names.prefix, REDIS_URL: SHARED_REDIS, REDIS_PREFIX: names.redisPrefix, PROJECTOR_PROBE_PORT: '0' };
}

/** A private nats-server with JetStream on a free port; restartable on the same store. */
export async function startPrivateNats() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-nats-'));
  await chmod(dir, 0o755);
  const port = await freePort();
  let child: ChildProcess | undefined;
  const isUp = () => portOpen(new URL(`nats://127.0.0.1:${port}`));
  async function start() {
    child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
    await until('nats-server to listen', async () => ((await isUp()) ? true : undefined), 10_000, 20);
  }
  async function stop() {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  }
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    restart: async () => { await stop(); await start(); },
    stop,
    async destroy() { await stop(); await rm(dir, { recursive: true, force: true }); },
  };
}

/** Runs a runtime the way the projector process does: when the consumer changes (replay) or fails, run it again. */
export function keepRunning(runtime: ProjectorRuntime): { stop(): Promise<void> } {
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      await runtime.run().catch(() => {});
      if (!stopped) await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await runtime.stop();
      await running;
    },
  };
}

/** An in-process projector that remembers every change it applied, keyed by its message id. */
export async function startCountingProjector(props: { natsUrl?: string; names: PipelineNames; name?: string }) {
  const nc = await connect({ servers: (props.natsUrl ?? SHARED_NATS).split(','), maxReconnectAttempts: -1 });
  const effects = new Map<string, number>(); // message id → times the effect was applied (idempotent: stays 1)
  const seen: ChangeEvent[] = [];
  const counters = { deliveries: 0 };
  const runtime = new ProjectorRuntime({
    nc, stream: props.names.stream, subjectPrefix: props.names.prefix, name: props.name ?? 'counting', log: pino({ level: 'silent' }),
    projection: {
      async apply(events) {
        counters.deliveries += events.length;
        for (const e of events) {
          const id = messageIdFor(e.source);
          if (!effects.has(id)) {
            effects.set(id, 1);
            seen.push(e);
          }
        }
      },
    },
  });
  await until('the CDC stream to exist', async () => {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(props.names.stream).then(() => true, () => undefined));
  });
  const running = keepRunning(runtime);
  return {
    effects,
    seen,
    counters,
    runtime,
    async stop() { await running.stop(); await nc.close(); },
  };
}

/** Removes the slot, streams, status entries and Redis keys a test created. */
export async function cleanUp(props: { databaseUrl: string; names: PipelineNames; natsUrl?: string }) {
  const client = new pg.Client({ connectionString: props.databaseUrl });
  await client.connect().then(async () => {
    await until('the slot to be released', async () => {
      const { rows } = await client.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [props.names.slot]);
      return !rows[0]?.active ? true : undefined;
    }, 10_000).catch(() => {});
    await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [props.names.slot]).catch(() => {});
  }).finally(() => client.end().catch(() => {}));
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: (props.natsUrl ?? SHARED_NATS).split(','), reconnect: false });
    const jsm = await jetstreamManager(nc);
    for (const s of [props.names.stream, `${props.names.stream}_DLQ`]) await jsm.streams.delete(s).catch(() => {});
    const kv = await new Kvm(nc).open(STATUS_BUCKET).catch(() => undefined);
    if (kv) for await (const key of await kv.keys(`${props.names.stream}.>`)) await kv.purge(key).catch(() => {});
  } catch { /* private server already gone */ }
  await nc?.close().catch(() => {});
  const redis = new Redis(SHARED_REDIS);
  const keys = await redis.keys(`${props.names.redisPrefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
}

/** Every stock_levels row of the database, as Redis should hold it. */
export async function stockRows(databaseUrl: string) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ sku: string; location: string; on_hand: number; reserved: number; version: string }>(
      'SELECT sku, location, on_hand, reserved, version FROM stock_levels ORDER BY sku, location');
    return rows;
  } finally {
    await client.end();
  }
}

/** Compares the Redis projection with Postgres; returns the rows that differ. */
export async function cacheDifferences(databaseUrl: string, redisPrefix: string) {
  const redis = new Redis(SHARED_REDIS);
  try {
    const diffs: string[] = [];
    for (const row of await stockRows(databaseUrl)) {
      const h = await redis.hgetall(`${redisPrefix}stock:${row.sku}:${row.location}`);
      const want = { on_hand: String(row.on_hand), reserved: String(row.reserved), available: String(row.on_hand - row.reserved), version: row.version };
      const got = { on_hand: h.on_hand, reserved: h.reserved, available: h.available, version: h.version };
      if (JSON.stringify(want) !== JSON.stringify(got)) diffs.push(`${row.sku}@${row.location}: want ${JSON.stringify(want)} got ${JSON.stringify(got)}`);
    }
    return diffs;
  } finally {
    redis.disconnect();
  }
}

/** Highest stock_movements id so far (a baseline before a load). */
export async function maxMovementId(pool: pg.Pool): Promise<number> {
  return Number((await pool.query('SELECT coalesce(max(id), 0) AS id FROM stock_movements')).rows[0].id);
}

/** Ids of the ledger rows committed after `id`, in order. */
export async function movementIdsAfter(pool: pg.Pool, id: number): Promise<string[]> {
  return (await pool.query('SELECT id::text FROM stock_movements WHERE id > $1 ORDER BY id', [id])).rows.map((r) => r.id);
}
