/**
 * The CDC reader: streams the slot, turns row changes into envelopes, publishes them to JetStream with
 * a window of acknowledgements in flight, and confirms a WAL position to Postgres only once JetStream
 * has acknowledged every event at or before it (SlotAcker). While idle it asks the server for keepalives
 * and confirms their position, so an idle or unrelated-write database never pins WAL, and it publishes
 * position markers so projectors' applied positions keep pace with the WAL.
 */
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { messageIdFor, positionSubject, subjectFor, type ChangeEvent, type PositionMarker } from './envelope.ts';
import { EventBuilder, type TransactionInfo } from './event-builder.ts';
import { formatLsn } from './lsn.ts';
import type { CdcMetrics } from './metrics.ts';
import { ReplicationStream, type ServerMessage } from './replication-stream.ts';
import { SlotAcker, type TxTicket } from './slot-acker.ts';
import { WindowedPublisher } from './windowed-publisher.ts';

export interface ReaderProps {
  databaseUrl: string;
  slot: string;
  publication: string;
  subjectPrefix: string;
  nc: NatsConnection;
  maxInFlight: number;
  publishTimeoutMs?: number;
  statusIntervalMs: number;
  log: Logger;
  metrics?: CdcMetrics;
}

const encoder = new TextEncoder();
const MARKER_HEARTBEAT_MS = 1000;

export class CdcReader {
  private readonly acker = new SlotAcker();
  private readonly publisher: WindowedPublisher;
  private readonly js: JetStreamClient;
  private readonly builder: EventBuilder;
  private stream: ReplicationStream | undefined;
  private ticket: TxTicket | undefined;
  private ackTicket: () => void = () => {};
  private oldestOpenCommit: number | undefined;
  private confirmedSent = 0n;
  private markerSent = 0n;
  private markerAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** events published since the counters were last updated, by subject (counted here: a labelled inc() per event costs more) */
  private readonly published = new Map<string, { table: string; op: string; n: number }>();

  constructor(private readonly props: ReaderProps) {
    this.js = jetstream(props.nc);
    this.publisher = new WindowedPublisher({
      nc: props.nc,
      maxInFlight: props.maxInFlight,
      timeoutMs: props.publishTimeoutMs,
      onLatency: (s) => props.metrics?.publishLatency.observe(s),
      // end the run now, not at the next WAL message (an idle database may send none for a while)
      onFailure: (err) => this.stream?.abort(err),
    });
    this.builder = new EventBuilder({
      begin: (tx) => this.onBegin(tx),
      change: (event) => this.onChange(event),
      commit: (tx) => this.onCommit(tx),
    });
  }

  /** Position confirmed to Postgres so far. */
  confirmedLsn(): string {
    return formatLsn(this.confirmedSent);
  }

  /** Streams until stop() or an error (which it throws; the owner restarts with backoff). */
  async run(): Promise<void> {
    const stream = new ReplicationStream({
      connectionString: this.props.databaseUrl,
      slot: this.props.slot,
      publication: this.props.publication,
      onMessage: (m) => this.onMessage(m),
    });
    this.stream = stream;
    this.timer = setInterval(() => this.tick(), this.props.statusIntervalMs);
    try {
      await stream.run();
    } finally {
      clearInterval(this.timer);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.countPublished();
    await this.publisher.flush().catch(() => {});
    this.sendStatus(false);
    this.publisher.close();
    await this.stream?.stop();
  }

  /** Synchronous unless the publish window is full: then the promise tells the stream to wait. */
  private onMessage(message: ServerMessage): Promise<void> | undefined {
    const failure = this.publisher.error();
    if (failure) throw failure;
    if (message.kind === 'keepalive') {
      // every change before walEnd has already been handed to us (same socket, in order)
      this.acker.passIdle(message.walEnd);
      if (message.replyRequested) this.sendStatus(false);
      return undefined;
    }
    // a pgoutput message yields at most one publish, and the window had room before it: never overfilled
    this.builder.push(message.walStart, message.message);
    return this.publisher.room(); // backpressure: wait while the publish window is full
  }

  private onBegin(_tx: TransactionInfo) {
    const ticket = this.acker.open();
    this.ticket = ticket;
    this.ackTicket = () => this.acker.acked(ticket); // one callback per transaction, not per event
  }

  private onChange(event: ChangeEvent) {
    const ticket = this.ticket!;
    this.acker.track(ticket);
    this.oldestOpenCommit ??= Date.parse(event.source.commitTime);
    // Buffer.from, not TextEncoder: small strings are copied into Node's shared pool, about 3× cheaper
    const payload = Buffer.from(JSON.stringify(event));
    const subject = subjectFor(this.props.subjectPrefix, event.table, event.op);
    const count = this.published.get(subject);
    if (count) count.n += 1;
    else this.published.set(subject, { table: event.table, op: event.op, n: 1 });
    this.publisher.publish(subject, payload, messageIdFor(event.source), this.ackTicket);
  }

  private onCommit(tx: TransactionInfo) {
    this.acker.close(this.ticket!, tx.commitEndLsn);
    this.ticket = undefined;
    if (this.acker.idle()) this.oldestOpenCommit = undefined;
  }

  private countPublished() {
    for (const c of this.published.values()) {
      if (c.n === 0) continue;
      this.props.metrics?.eventsPublished.inc({ table: c.table, op: c.op }, c.n);
      c.n = 0;
    }
  }

  private sendStatus(ping: boolean) {
    const safe = this.acker.safeLsn();
    if (safe > this.confirmedSent) this.confirmedSent = safe;
    this.stream?.sendStatus(this.confirmedSent, ping);
  }

  /** Periodic: confirm progress, ask for a keepalive when idle, publish a position marker, update lag. */
  private tick() {
    this.countPublished();
    const idle = this.acker.idle() && this.publisher.pending() === 0;
    this.sendStatus(idle);
    if (idle) this.oldestOpenCommit = undefined;
    this.props.metrics?.lagSeconds.set(this.oldestOpenCommit ? Math.max(0, (Date.now() - this.oldestOpenCommit) / 1000) : 0);
    // a marker when the position moved, and at least once a second as the pipeline's heartbeat
    if (idle && (this.confirmedSent > this.markerSent || Date.now() - this.markerAt >= MARKER_HEARTBEAT_MS)) {
      const lsn = this.confirmedSent;
      const marker: PositionMarker = { op: 'position', lsn: formatLsn(lsn), at: new Date().toISOString() };
      this.markerSent = lsn;
      this.markerAt = Date.now();
      this.js.publish(positionSubject(this.props.subjectPrefix), encoder.encode(JSON.stringify(marker))).catch((err) => {
        this.markerSent = 0n; // try again next tick
        this.props.log.warn({ err }, 'position marker not published');
      });
    }
  }
}
