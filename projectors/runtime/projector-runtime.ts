/**
 * The loop every projector runs: a durable pull consumer on the CDC stream, messages applied in stream
 * order in micro-batches (whatever arrived while the previous batch was applied, up to batchSize), then
 * acknowledged. Effects must be idempotent (compare versions / positions), so redelivery changes nothing.
 * A failed batch is retried message by message: a failing message is redelivered later with backoff
 * (honouring Retry-After) — or, for an `ordered` projection, retried in place, holding back later ones;
 * one that keeps failing, or can never succeed, goes to the dead-letter subject with its error and is
 * terminated. After each batch the applied position (commit LSN or position
 * marker) and the commit → applied lag are recorded for /metrics and the sync-status bucket.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ChangeEvent, StreamMessage } from '../../cdc/envelope.ts';
import { compareLsn } from '../../cdc/lsn.ts';
import type { ProjectorMetrics } from './metrics.ts';
import { isPermanent, redeliveryDelayMs } from './retry-policy.ts';

export interface AppliedPosition {
  lsn: string;
  /** commit time of the last applied change (absent for position markers) */
  commitTime?: string | undefined;
  streamSeq: number;
}

export interface Projection {
  /** Applies changes in stream order; must be idempotent. Throw to have the batch retried. */
  apply(events: ChangeEvent[]): Promise<void>;
  /**
   * Optional pipelined form of apply, for targets whose writes are paced (sheet providers): takes the
   * batch in synchronously, in stream order, and returns a promise that settles when its effect is
   * durable. The runtime goes on to the next batch meanwhile and acknowledges batches in order as their
   * promises resolve, so changes arriving during one paced write go out with the next one. A rejection
   * redelivers that batch and every later one still unsettled (the applied position never passes it).
   */
  stage?(events: ChangeEvent[]): Promise<void>;
  /**
   * Effects must happen in stream order even across failures (the webhook fan-out queues deliveries in
   * arrival order). A failed change is then retried in place, with the same backoff, holding back every
   * later change, instead of being redelivered later while later changes go ahead (redeliveries with
   * different delays, and messages already buffered, would arrive out of order).
   */
  ordered?: boolean;
  /** Persists the applied position next to the projection (optional). */
  recordPosition?(position: AppliedPosition): Promise<void>;
}

export interface ProjectorStatus {
  name: string;
  applied_lsn: string | null;
  commit_time: string | null;
  applied_at: string | null;
  lag_ms: number | null;
  stream_seq: number;
  dead_letters: number;
}

export interface ProjectorProps {
  nc: NatsConnection;
  stream: string;
  subjectPrefix: string;
  name: string;
  projection: Projection;
  log: Logger;
  metrics?: ProjectorMetrics;
  status?: KV;
  batchSize?: number;
  maxDeliver?: number;
}

const decoder = new TextDecoder();
const STATUS_EVERY_MS = 250;
const ACK_WAIT_MS = 30_000;

/** Key of a projector's entry in the sync-status bucket (one bucket serves every stream). */
export function statusKey(stream: string, projector: string): string {
  return `${stream}.${projector}`;
}

/** Subject a projector's dead letters are published on (captured by the <stream>_DLQ stream). */
export function deadLetterSubject(prefix: string, projector: string): string {
  return `dlq.${prefix}.${projector}`;
}

export class ProjectorRuntime {
  private messages: ConsumerMessages | undefined;
  private queue: JsMsg[] = [];
  private inFlight: JsMsg[] = [];
  /** staged batches not yet settled (pipelined projections), acknowledged in order */
  private settling: Promise<void> = Promise.resolve();
  private readonly unsettled = new Set<JsMsg>();
  /** a staged batch failed: later unsettled batches are redelivered too, until the pipeline drains */
  private pipelineBroken = false;
  private busy: Promise<void> | undefined;
  private position: AppliedPosition | undefined;
  private deadLetters = 0;
  private lastStatusAt = 0;
  private failure: Error | undefined;
  private stopping = false;
  private readonly batchSize: number;
  private readonly maxDeliver: number;

  constructor(private readonly props: ProjectorProps) {
    this.batchSize = props.batchSize ?? 500;
    this.maxDeliver = props.maxDeliver ?? 8;
  }

  /** The last applied position (undefined before the first batch). */
  applied(): AppliedPosition | undefined {
    return this.position;
  }

  /** Creates the durable consumer and dead-letter stream if missing. */
  async setup(): Promise<void> {
    const jsm = await jetstreamManager(this.props.nc);
    const dlqStream = `${this.props.stream}_DLQ`;
    try {
      await jsm.streams.info(dlqStream);
    } catch {
      await jsm.streams.add({ name: dlqStream, subjects: [`dlq.${this.props.subjectPrefix}.>`] }).catch(() => {});
    }
    const config = {
      durable_name: this.props.name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ACK_WAIT_MS * 1_000_000,
      max_deliver: this.maxDeliver + 2, // we dead-letter at maxDeliver; the server's own cap is a backstop
      max_ack_pending: 20_000,
    };
    try {
      await jsm.consumers.info(this.props.stream, this.props.name);
    } catch {
      await jsm.consumers.add(this.props.stream, config);
    }
  }

  /** Consumes until stop(); throws if the consumer fails for good. */
  async run(): Promise<void> {
    this.stopping = false;
    await this.setup();
    const consumer = await jetstream(this.props.nc).consumers.get(this.props.stream, this.props.name);
    // a deleted or recreated consumer (replay) ends the loop at once, so the owner restarts it on the new one
    // short pull expiry: after a NATS node dies the pull is re-issued within seconds, not after 30 s
    this.messages = await consumer.consume({ max_messages: this.batchSize * 4, expires: 5000, abort_on_missing_resource: true });
    for await (const m of this.messages) {
      if (this.failure) break;
      this.queue.push(m);
      this.kick();
    }
    await this.busy;
    if (this.failure) throw this.failure;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.messages?.close().catch(() => {});
    await this.busy;
    await this.settling;
  }

  private kick() {
    if (this.busy) return;
    this.busy = (async () => {
      // a projection may wait out a slow target (a sheet provider throttling us): keep the ack deadline
      // of every message we hold alive meanwhile, so JetStream does not redeliver them as if we had died
      const heartbeat = setInterval(() => {
        for (const m of this.queue) m.working();
        for (const m of this.inFlight) m.working();
        for (const m of this.unsettled) m.working();
      }, ACK_WAIT_MS / 3);
      try {
        while (this.queue.length) {
          this.inFlight = this.queue.splice(0, this.batchSize);
          await this.processBatch(this.inFlight);
          this.inFlight = [];
        }
      } catch (err) {
        this.failure = err as Error;
        this.messages?.stop();
      } finally {
        clearInterval(heartbeat);
        this.busy = undefined;
      }
    })();
  }

  private parse(m: JsMsg): StreamMessage | undefined {
    try {
      return JSON.parse(decoder.decode(m.data)) as StreamMessage;
    } catch {
      return undefined;
    }
  }

  private async processBatch(batch: JsMsg[]) {
    const parsed: { m: JsMsg; event: StreamMessage }[] = [];
    for (const m of batch) {
      const event = this.parse(m);
      if (!event) await this.deadLetter(m, new Error('message is not valid JSON'));
      else parsed.push({ m, event });
    }
    const changes = parsed.filter((p): p is { m: JsMsg; event: ChangeEvent } => p.event.op !== 'position');
    if (this.props.projection.stage) return this.stageBatch(parsed, changes);
    try {
      if (changes.length) await this.props.projection.apply(changes.map((c) => c.event));
      for (const p of parsed) p.m.ack();
      this.props.metrics?.eventsApplied.inc({ projector: this.props.name }, changes.length);
    } catch (err) {
      this.props.log.warn({ err: { message: (err as Error).message }, size: changes.length }, 'batch failed; retrying its messages one by one');
      if (this.props.projection.ordered) {
        for (const p of parsed) {
          if (p.event.op === 'position') p.m.ack();
          else if (!(await this.applyInPlace(p.m, p.event))) return; // stopping: the rest is redelivered in order
        }
        await this.advance(parsed);
        return;
      }
      let settled = parsed.length;
      for (const [i, p] of parsed.entries()) {
        if (p.event.op === 'position') {
          p.m.ack();
          continue;
        }
        if (!(await this.applyOne(p.m, p.event)) && settled === parsed.length) settled = i;
      }
      // the applied position must not pass a change that is still waiting for redelivery
      await this.advance(parsed.slice(0, settled));
      return;
    }
    await this.advance(parsed);
  }

  /** Pipelined projections: stage now, settle (ack or redeliver) in order when the effect is durable. */
  private stageBatch(parsed: { m: JsMsg; event: StreamMessage }[], changes: { m: JsMsg; event: ChangeEvent }[]) {
    for (const p of parsed) this.unsettled.add(p.m);
    let durable: Promise<void>;
    try {
      durable = changes.length ? this.props.projection.stage!(changes.map((c) => c.event)) : Promise.resolve();
    } catch (err) {
      durable = Promise.reject(err);
    }
    const previous = this.settling;
    this.settling = (async () => {
      let failure: Error | undefined;
      await durable.catch((err: Error) => (failure = err));
      await previous;
      if (this.pipelineBroken && !failure) failure = new Error('an earlier batch failed; redelivering in order');
      if (!failure) {
        for (const p of parsed) p.m.ack();
        this.props.metrics?.eventsApplied.inc({ projector: this.props.name }, changes.length);
        await this.advance(parsed);
      } else {
        this.pipelineBroken = true;
        this.props.log.warn({ err: { message: failure.message }, size: changes.length }, 'staged batch failed; redelivering it');
        for (const p of parsed) {
          if (p.event.op === 'position') p.m.nak(0);
          else if (isPermanent(failure) || p.m.info.deliveryCount >= this.maxDeliver) await this.deadLetter(p.m, failure);
          else p.m.nak(redeliveryDelayMs(p.m.info.deliveryCount, failure));
        }
      }
      for (const p of parsed) this.unsettled.delete(p.m);
      if (this.unsettled.size === 0) this.pipelineBroken = false;
    })();
  }

  /**
   * Ordered projections: applies one change, retrying in place with backoff until it applies or has to
   * be dead-lettered (true). The heartbeat keeps this and the later held messages alive meanwhile. On
   * stop it gives up (false): this message and the rest of the batch are left for redelivery.
   */
  private async applyInPlace(m: JsMsg, event: ChangeEvent): Promise<boolean> {
    for (let attempt = m.info.deliveryCount; ; attempt++) {
      try {
        return await this.applyAndAck(m, event);
      } catch (err) {
        if (await this.deadLetterIfHopeless(m, err as Error, attempt)) return true;
        const delay = redeliveryDelayMs(attempt, err);
        this.props.log.warn({ err: { message: (err as Error).message }, subject: m.subject, attempt, retryInMs: delay }, 'change not applied; retrying it in place (ordered)');
        for (const until = Date.now() + delay; Date.now() < until && !this.stopping;) await new Promise((r) => setTimeout(r, Math.min(250, until - Date.now())));
        if (this.stopping) return false;
      }
    }
  }

  /** Applies one change; true when it is settled (applied or dead-lettered), false when it will be redelivered. */
  private async applyOne(m: JsMsg, event: ChangeEvent): Promise<boolean> {
    try {
      return await this.applyAndAck(m, event);
    } catch (err) {
      if (await this.deadLetterIfHopeless(m, err as Error, m.info.deliveryCount)) return true;
      const delay = redeliveryDelayMs(m.info.deliveryCount, err);
      this.props.log.warn({ err: { message: (err as Error).message }, subject: m.subject, delivery: m.info.deliveryCount, retryInMs: delay }, 'change not applied; will be redelivered');
      m.nak(delay);
      return false;
    }
  }

  private async applyAndAck(m: JsMsg, event: ChangeEvent): Promise<true> {
    await this.props.projection.apply([event]);
    m.ack();
    this.props.metrics?.eventsApplied.inc({ projector: this.props.name });
    return true;
  }

  /** Dead-letters a change that can never apply, or has failed `attempt` ≥ maxDeliver times; true if it did. */
  private async deadLetterIfHopeless(m: JsMsg, err: Error, attempt: number): Promise<boolean> {
    if (!isPermanent(err) && attempt < this.maxDeliver) return false;
    await this.deadLetter(m, err);
    return true;
  }

  private async deadLetter(m: JsMsg, err: Error) {
    const subject = deadLetterSubject(this.props.subjectPrefix, this.props.name);
    const js = jetstream(this.props.nc);
    const h = headers();
    h.set('Stockwire-Error', err.message.slice(0, 500));
    h.set('Stockwire-Subject', m.subject);
    h.set('Stockwire-Stream-Seq', String(m.seq));
    await js.publish(subject, m.data, { headers: h });
    m.term(err.message.slice(0, 200));
    this.deadLetters += 1;
    this.props.metrics?.deadLetters.inc({ projector: this.props.name });
    this.props.log.error({ subject: m.subject, seq: m.seq, err: { message: err.message } }, 'message dead-lettered');
  }

  private async advance(parsed: { m: JsMsg; event: StreamMessage }[]) {
    const lastEntry = parsed[parsed.length - 1];
    if (!lastEntry) return;
    const now = Date.now();
    for (const { event } of parsed) {
      if (event.op !== 'position') this.props.metrics?.lag.observe({ projector: this.props.name }, Math.max(0, now - Date.parse(event.source.commitTime)) / 1000);
    }
    const lsn = lastEntry.event.op === 'position' ? lastEntry.event.lsn : lastEntry.event.source.commitLsn;
    const commitTime = [...parsed].reverse().find((p) => p.event.op !== 'position')?.event as ChangeEvent | undefined;
    if (!this.position || compareLsn(lsn, this.position.lsn) >= 0) {
      this.position = { lsn, commitTime: commitTime?.source.commitTime ?? this.position?.commitTime, streamSeq: lastEntry.m.seq };
    }
    await this.props.projection.recordPosition?.(this.position);
    this.props.metrics?.appliedSeq.set({ projector: this.props.name }, this.position.streamSeq);
    if (this.props.status && now - this.lastStatusAt >= STATUS_EVERY_MS) {
      this.lastStatusAt = now;
      const status: ProjectorStatus = {
        name: this.props.name,
        applied_lsn: this.position.lsn,
        commit_time: this.position.commitTime ?? null,
        applied_at: new Date(now).toISOString(),
        lag_ms: this.position.commitTime ? Math.max(0, now - Date.parse(this.position.commitTime)) : null,
        stream_seq: this.position.streamSeq,
        dead_letters: this.deadLetters,
      };
      await this.props.status.put(statusKey(this.props.stream, this.props.name), JSON.stringify(status)).catch(() => {});
    }
  }
}

