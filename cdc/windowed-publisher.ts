/**
 * Publishes to JetStream with many acknowledgements in flight (not one round trip per event), up to a
 * window. Each message carries Nats-Msg-Id so a re-send is dropped by the stream's de-duplication. A
 * failed publish (an error acknowledgement, no stream listening, or no acknowledgement within the
 * timeout) is fatal for the reader: nothing after it is confirmed to Postgres, and a restart re-sends
 * from the slot's confirmed position.
 *
 * This is what JetStreamClient.publish() does, without its per-message request machinery: a message is
 * a plain publish whose reply subject is `<inbox>.<n>` on one subscription of ours, the acknowledgement
 * (PubAck JSON) is checked in that subscription's callback, and one timer checks the oldest message
 * still waiting. nats.js' request machinery (a timer, deferreds and up to three captured stack traces
 * per request) took over a quarter of the reader's CPU, which made the client, not JetStream, the bound.
 *
 * publish() is synchronous and queues; the queue goes to the connection once per turn of the event loop
 * (setImmediate), after the turn's socket reads, so nats.js writes it in 32 KiB chunks rather than a
 * small write per read of the replication stream. Callers wait on room() only when the window is full.
 */
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { ackProblem } from './pub-ack.ts';

export class PublishFailed extends Error {
  readonly code = 'publish_failed';
}

interface InFlight {
  token: number;
  subject: string;
  /** until it is handed to the connection */
  payload: Uint8Array | undefined;
  msgID: string;
  onAck: () => void;
  /** performance.now() when publish() took it */
  sentAt: number;
}

const MSG_ID_HEADER = 'Nats-Msg-Id';

export class WindowedPublisher {
  /** messages awaiting their acknowledgement, by reply token, oldest first (Map keeps insertion order) */
  private readonly inFlight = new Map<number, InFlight>();
  private nextToken = 0;
  private failure: Error | undefined;
  private roomWaiter: { promise: Promise<void>; resolve: () => void } | undefined;
  private drained: (() => void)[] = [];
  private readonly timeoutMs: number;
  private readonly inbox: string;
  private readonly subscription: Subscription;
  private readonly timer: NodeJS.Timeout;
  /** taken by publish(), not yet handed to the connection */
  private readonly outbox: InFlight[] = [];
  private sendSoon: NodeJS.Immediate | undefined;

  constructor(private readonly props: {
    nc: NatsConnection;
    maxInFlight: number;
    timeoutMs?: number | undefined;
    onLatency?: (seconds: number) => void;
    /** called once, with the first failure (so an owner with nothing more to publish need not wait to notice) */
    onFailure?: (err: Error) => void;
  }) {
    this.timeoutMs = props.timeoutMs ?? 5000;
    this.inbox = `${createInbox()}.`;
    this.subscription = props.nc.subscribe(`${this.inbox}*`, { callback: (err, msg) => this.onReply(err, msg) });
    this.timer = setInterval(() => this.checkTimeouts(), Math.max(10, Math.min(250, this.timeoutMs / 4)));
    this.timer.unref();
  }

  /**
   * Sends one message at once; `onAck` runs when JetStream stored it (or reported it as a duplicate).
   * Throws the first publish failure, if any, and refuses to overfill the window: wait on room() first.
   */
  publish(subject: string, payload: Uint8Array, msgID: string, onAck: () => void): void {
    if (this.failure) throw this.failure;
    if (this.inFlight.size >= this.props.maxInFlight) throw new Error('publish window is full: wait for room() first');
    const m: InFlight = { token: this.nextToken++, subject, payload, msgID, onAck, sentAt: performance.now() };
    this.inFlight.set(m.token, m);
    this.outbox.push(m);
    this.sendSoon ??= setImmediate(this.sendOutbox);
  }

  /**
   * Hands the queued messages to the connection in one go, after the current turn of the event loop has
   * read what the sockets had: nats.js then writes them in 32 KiB chunks instead of one small write per
   * socket read of the replication stream (each write a system call that also wakes nats-server).
   */
  private readonly sendOutbox = () => {
    this.sendSoon = undefined;
    const batch = this.outbox.splice(0);
    for (const m of batch) {
      if (this.failure) return; // left in flight: never acknowledged, so never confirmed
      const h = headers();
      h.set(MSG_ID_HEADER, m.msgID);
      const payload = m.payload;
      m.payload = undefined;
      try {
        this.props.nc.publish(m.subject, payload, { reply: `${this.inbox}${m.token}`, headers: h });
      } catch (err) {
        this.fail(new PublishFailed(`could not publish ${m.subject} (${m.msgID}): ${(err as Error).message}`, { cause: err }));
      }
    }
  };

  /**
   * undefined while there is room for another publish; otherwise a promise that resolves once there is
   * (or once a publish failed: publish() and error() then report it).
   */
  room(): Promise<void> | undefined {
    if (this.inFlight.size < this.props.maxInFlight || this.failure) return undefined;
    if (!this.roomWaiter) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.roomWaiter = { promise, resolve };
    }
    return this.roomWaiter.promise;
  }

  /** Resolves when nothing is in flight; throws if a publish failed. */
  async flush(): Promise<void> {
    if (this.inFlight.size > 0 && !this.failure) await new Promise<void>((resolve) => this.drained.push(resolve));
    if (this.failure) throw this.failure;
  }

  /** The first publish error, if any. */
  error(): Error | undefined {
    return this.failure;
  }

  pending(): number {
    return this.inFlight.size;
  }

  /** Stops listening for acknowledgements; whatever is still in flight counts as failed. */
  close(): void {
    if (this.subscription.isClosed()) return;
    clearInterval(this.timer);
    clearImmediate(this.sendSoon);
    if (this.inFlight.size) this.fail(new PublishFailed(`publisher closed with ${this.inFlight.size} publishes unacknowledged`));
    this.subscription.unsubscribe();
  }

  private onReply(err: Error | null, msg: Msg) {
    if (err) {
      this.fail(new PublishFailed(`JetStream acknowledgements stopped: ${err.message}`, { cause: err }));
      return;
    }
    const token = Number(msg.subject.slice(this.inbox.length));
    const entry = this.inFlight.get(token);
    if (!entry) return; // already failed by the timeout check
    this.inFlight.delete(token);
    const problem = ackProblem(msg);
    if (problem) {
      this.fail(new PublishFailed(`JetStream did not acknowledge ${entry.subject} (${entry.msgID}): ${problem}`));
    } else {
      this.props.onLatency?.((performance.now() - entry.sentAt) / 1000);
      try {
        entry.onAck();
      } catch (e) {
        this.fail(e as Error);
      }
    }
    this.settled();
  }

  private checkTimeouts() {
    const oldest = this.inFlight.values().next();
    if (oldest.done || this.failure) return;
    const waited = performance.now() - oldest.value.sentAt;
    if (waited > this.timeoutMs) {
      this.fail(new PublishFailed(`JetStream did not acknowledge ${oldest.value.subject} (${oldest.value.msgID}) within ${this.timeoutMs} ms`));
    }
  }

  private fail(err: Error): Error {
    if (!this.failure) {
      this.failure = err;
      this.props.onFailure?.(err);
    }
    this.wakeRoom();
    for (const d of this.drained.splice(0)) d();
    return this.failure;
  }

  private settled() {
    if (this.inFlight.size < this.props.maxInFlight) this.wakeRoom();
    if (this.inFlight.size === 0 && this.drained.length) for (const d of this.drained.splice(0)) d();
  }

  private wakeRoom() {
    const waiter = this.roomWaiter;
    this.roomWaiter = undefined;
    waiter?.resolve();
  }
}
