/**
 * The dashboard's live feed: one ephemeral ordered JetStream consumer per API process on the CDC stream,
 * fanned out to every subscriber (each SSE connection of GET /v1/dashboard/events). Ordered consumers
 * keep no ack state on the server and are deleted when we stop (or expire on their own when we die), so
 * there is nothing to clean up; the feed reads exactly what the projectors read.
 *
 * Invariants: at most one consumer per process, started with the first subscriber and removed a little
 * after the last one left; it starts at the stream's end (only changes committed from now on); after a
 * (re)start subscribers get `ready`, meaning "changes from here on reach you: reload your snapshot once".
 * Each change becomes a compact, PII-free JSON (LiveChange) for the tables the dashboard shows.
 */
import { jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ChangeEvent, StreamMessage } from '../../cdc/envelope.ts';

export const LIVE_TABLES = ['stock_levels', 'lots', 'orders', 'products'] as const;
export type LiveTable = (typeof LIVE_TABLES)[number];

interface ChangeMeta {
  op: ChangeEvent['op'];
  /** ISO time of the commit in Postgres: the dashboard measures commit → screen from it */
  commit_time: string;
  commit_lsn: string;
}

export type LiveChange = ChangeMeta & (
  | { table: 'stock_levels'; sku: string; location: string; on_hand: number; reserved: number; available: number; version: number }
  | { table: 'lots'; id: string; sku: string; location: string; lot_code: string; expires_on: string; on_hand: number; reserved: number }
  | { table: 'orders'; id: string; status: string; location: string; external_ref: string | null; version: number; created_at: string; updated_at: string }
  | { table: 'products'; sku: string; name: string; kind: string; reorder_point: number; active: boolean; version: number }
);

/** What a subscriber hears: a change, "ready" after the consumer (re)started, or "closed" when the feed stops. */
export type LiveSignal = { type: 'change'; change: LiveChange } | { type: 'ready' } | { type: 'closed' };

export interface LiveFeed {
  /** false while NATS is not connected: GET /v1/dashboard/events then answers 503 */
  available(): boolean;
  /** Adds a listener (starting the consumer if it is the first); returns its unsubscribe function. */
  subscribe(listener: (signal: LiveSignal) => void): () => void;
  /** how often each SSE connection sends a keep-alive comment */
  readonly heartbeatMs: number;
  /** subscribers now listening */
  listeners(): number;
  /** true while the consumer delivers (subscribers got `ready`) */
  consuming(): boolean;
  /** Ends every subscription and removes the consumer. */
  stop(): Promise<void>;
}

const num = (v: unknown) => Number(v ?? 0);
const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));

/** The compact dashboard form of a change (only the columns it shows; never customer contact), or undefined for other tables. */
export function compactChange(event: ChangeEvent): LiveChange | undefined {
  const row = event.after ?? event.before;
  if (!row) return undefined;
  const meta: ChangeMeta = { op: event.op, commit_time: event.source.commitTime, commit_lsn: event.source.commitLsn };
  switch (event.table) {
    case 'stock_levels':
      return { ...meta, table: 'stock_levels', sku: str(row.sku), location: str(row.location), on_hand: num(row.on_hand), reserved: num(row.reserved), available: num(row.on_hand) - num(row.reserved), version: num(row.version) };
    case 'lots':
      return { ...meta, table: 'lots', id: str(row.id), sku: str(row.sku), location: str(row.location), lot_code: str(row.lot_code), expires_on: str(row.expires_on).slice(0, 10), on_hand: num(row.on_hand), reserved: num(row.reserved) };
    case 'orders':
      return { ...meta, table: 'orders', id: str(row.id), status: str(row.status), location: str(row.location), external_ref: row.external_ref === null || row.external_ref === undefined ? null : String(row.external_ref), version: num(row.version), created_at: str(row.created_at), updated_at: str(row.updated_at) };
    case 'products':
      return { ...meta, table: 'products', sku: str(row.sku), name: str(row.name), kind: str(row.kind), reorder_point: num(row.reorder_point), active: row.active !== false, version: num(row.version) };
    default:
      return undefined;
  }
}

export interface LiveFeedProps {
  /** the process's NATS connection, when there is one (it connects in the background) */
  nats: () => NatsConnection | undefined;
  stream: string;
  subjectPrefix: string;
  log: Logger;
  /** keep-alive comment interval of each SSE connection (default 15 s) */
  heartbeatMs?: number;
  /** how long the consumer outlives its last subscriber, so a page reload reuses it (default 10 s) */
  idleStopMs?: number;
}

const decoder = new TextDecoder();
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;

export function createLiveFeed(props: LiveFeedProps): LiveFeed {
  const log = props.log;
  const subscribers = new Set<(signal: LiveSignal) => void>();
  const tablePrefixes = LIVE_TABLES.map((t) => `${props.subjectPrefix}.${t}.`);
  let messages: ConsumerMessages | undefined;
  let deleteConsumer: (() => Promise<unknown>) | undefined;
  let running: Promise<void> | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let ready = false;
  let stopped = false;
  let wake: (() => void) | undefined;

  function broadcast(signal: LiveSignal) {
    for (const listener of subscribers) {
      try {
        listener(signal);
      } catch (err) {
        log.warn({ err: { message: (err as Error).message } }, 'live-feed subscriber failed');
      }
    }
  }

  const wanted = () => !stopped && subscribers.size > 0;

  async function pause(ms: number) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => { clearTimeout(timer); resolve(); };
    });
    wake = undefined;
  }

  /** One consumer at a time, re-created with backoff while someone listens (stream missing, NATS away). */
  async function run() {
    let attempt = 0;
    while (wanted()) {
      const nc = props.nats();
      if (nc && !nc.isClosed()) {
        try {
          // "deliver new", spelled as a start sequence: an ordered consumer that resets before its first
          // message would otherwise resume from sequence 1 and replay the whole stream to the dashboards
          const info = await (await jetstreamManager(nc)).streams.info(props.stream);
          const consumer = await jetstream(nc).consumers.get(props.stream, {
            filter_subjects: `${props.subjectPrefix}.>`, // one subject: nats-server 2.9 has no multi-filter
            opt_start_seq: info.state.last_seq + 1,
            inactive_threshold: 30_000,
          });
          deleteConsumer = () => consumer.delete();
          messages = await consumer.consume({ max_messages: 512 });
          if (!wanted()) break;
          attempt = 0;
          ready = true;
          broadcast({ type: 'ready' });
          log.info({ stream: props.stream }, 'live feed consuming');
          for await (const m of messages) {
            if (!tablePrefixes.some((p) => m.subject.startsWith(p))) continue;
            let event: StreamMessage;
            try {
              event = JSON.parse(decoder.decode(m.data)) as StreamMessage;
            } catch {
              continue;
            }
            if (event.op === 'position') continue;
            const change = compactChange(event);
            if (change) broadcast({ type: 'change', change });
          }
        } catch (err) {
          log.warn({ err: { message: (err as Error).message }, stream: props.stream }, 'live feed consumer failed; retrying');
        } finally {
          ready = false;
          await messages?.close().catch(() => {});
          messages = undefined;
          await deleteConsumer?.().catch(() => {});
          deleteConsumer = undefined;
        }
      }
      if (wanted()) await pause(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt++));
    }
  }

  function ensureRunning() {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
    running ??= run().finally(() => {
      running = undefined;
      if (wanted()) ensureRunning(); // someone subscribed while the last consumer was shutting down
    });
  }

  function stopConsumer() {
    void messages?.close().catch(() => {});
    wake?.();
  }

  return {
    heartbeatMs: props.heartbeatMs ?? 15_000,
    available: () => {
      const nc = props.nats();
      return !stopped && nc !== undefined && !nc.isClosed();
    },
    listeners: () => subscribers.size,
    consuming: () => ready,
    subscribe(listener) {
      if (stopped) {
        listener({ type: 'closed' });
        return () => {};
      }
      subscribers.add(listener);
      ensureRunning();
      if (ready) listener({ type: 'ready' });
      return () => {
        if (!subscribers.delete(listener) || subscribers.size > 0 || stopped) return;
        idleTimer = setTimeout(() => {
          idleTimer = undefined;
          if (subscribers.size === 0) stopConsumer();
        }, props.idleStopMs ?? 10_000);
        idleTimer.unref();
      };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (idleTimer) clearTimeout(idleTimer);
      broadcast({ type: 'closed' });
      subscribers.clear();
      stopConsumer();
      await running;
    },
  };
}
