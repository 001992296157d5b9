/**
 * Publishes to JetStream with many acknowledgements in flight (not one round trip per event), up to a
 * window; publish() waits only when the window is full. Each message carries Nats-Msg-Id so a re-send
 * is dropped by the stream's de-duplication. A failed publish is fatal for the reader: nothing after it
 * is confirmed to Postgres, and a restart re-sends from the slot's confirmed position.
 */
import type { JetStreamClient } from '@nats-io/jetstream';

export class PublishFailed extends Error {
  readonly code = 'publish_failed';
}

export class WindowedPublisher {
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private failure: Error | undefined;
  private drained: (() => void)[] = [];

  constructor(private readonly props: { js: JetStreamClient; maxInFlight: number; timeoutMs?: number | undefined; onLatency?: (seconds: number) => void }) {}

  /** Sends one message; `onAck` runs when JetStream stored it (or reported it as a duplicate). */
  async publish(subject: string, payload: Uint8Array, msgID: string, onAck: () => void): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.inFlight >= this.props.maxInFlight) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      if (this.failure) throw this.failure;
    }
    this.inFlight += 1;
    const started = performance.now();
    this.props.js
      .publish(subject, payload, { msgID, timeout: this.props.timeoutMs ?? 5000 })
      .then(() => {
        this.props.onLatency?.((performance.now() - started) / 1000);
        onAck();
      })
      .catch((err: Error) => {
        this.failure ??= new PublishFailed(`JetStream did not acknowledge ${subject} (${msgID}): ${err.message}`, { cause: err });
      })
      .finally(() => {
        this.inFlight -= 1;
        this.waiters.shift()?.();
        if (this.inFlight === 0) for (const d of this.drained.splice(0)) d();
      });
  }

  /** Resolves when nothing is in flight; throws if a publish failed. */
  async flush(): Promise<void> {
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    if (this.failure) throw this.failure;
  }

  /** The first publish error, if any. */
  error(): Error | undefined {
    return this.failure;
  }

  pending(): number {
    return this.inFlight;
  }
}
