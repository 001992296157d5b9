/**
 * The CDC reader: streams the slot, turns row changes into envelopes, publishes them to JetStream with
 * a window of acknowledgements in flight, and confirms a WAL position to Postgres only once JetStream
 * has acknowledged every event at or before it (SlotAcker). While idle it asks the server for keepalives
 * and confirms their position, so an idle or unrelated-write database never pins WAL, and it publishes
 * position markers so projectors' applied positions keep pace with the WAL.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
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
  js: JetStreamClient;
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
  private readonly builder: EventBuilder;
  private stream: ReplicationStream | undefined;
  private ticket: TxTicket | undefined;
  private oldestOpenCommit: number | undefined;
  private confirmedSent = 0n;
  private markerSent = 0n;
  private markerAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private pendingPublish: Promise<void> = Promise.resolve();

  constructor(private readonly props: ReaderProps) {
    this.publisher = new WindowedPublisher({
      js: props.js,
      maxInFlight: props.maxInFlight,
      timeoutMs: props.publishTimeoutMs,
      onLatency: (s) => props.metrics?.publishLatency.observe(s),
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
    await this.publisher.flush().catch(() => {});
    this.sendStatus(false);
    await this.stream?.stop();
  }

  private async onMessage(message: ServerMessage): Promise<void> {
    const failure = this.publisher.error();
    if (failure) throw failure;
    if (message.kind === 'keepalive') {
      // every change before walEnd has already been handed to us (same socket, in order)
      this.acker.passIdle(message.walEnd);
      if (message.replyRequested) this.sendStatus(false);
      return;
    }
    this.builder.push(message.walStart, message.message);
    await this.pendingPublish; // backpressure: wait while the publish window is full
  }

  private onBegin(_tx: TransactionInfo) {
    this.ticket = this.acker.open();
  }

  private onChange(event: ChangeEvent) {
    const ticket = this.ticket!;
    this.acker.track(ticket);
    this.oldestOpenCommit ??= Date.parse(event.source.commitTime);
    const payload = encoder.encode(JSON.stringify(event));
    const subject = subjectFor(this.props.subjectPrefix, event.table, event.op);
    this.props.metrics?.eventsPublished.inc({ table: event.table, op: event.op });
    this.pendingPublish = this.publisher.publish(subject, payload, messageIdFor(event.source), () => this.acker.acked(ticket));
  }

  private onCommit(tx: TransactionInfo) {
    this.acker.close(this.ticket!, tx.commitEndLsn);
    this.ticket = undefined;
    if (this.acker.idle()) this.oldestOpenCommit = undefined;
  }

  private sendStatus(ping: boolean) {
    const safe = this.acker.safeLsn();
    if (safe > this.confirmedSent) this.confirmedSent = safe;
    this.stream?.sendStatus(this.confirmedSent, ping);
  }

  /** Periodic: confirm progress, ask for a keepalive when idle, publish a position marker, update lag. */
  private tick() {
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
      this.props.js.publish(positionSubject(this.props.subjectPrefix), encoder.encode(JSON.stringify(marker))).catch((err) => {
        this.markerSent = 0n; // try again next tick
        this.props.log.warn({ err }, 'position marker not published');
      });
    }
  }
}
