/**
 * The channel contract every alert channel implements, its one error type, and the log channel: the
 * embedded default when no other channel is configured (an alert is a structured warn line).
 */
import { retryAfterMs } from '../../../lib/retry-after.ts';
import type { Logger } from 'pino';
import { detailsOf, summaryOf, type Notice } from '../alert-rules.ts';

export interface Channel {
  /** stable name, recorded per delivery in the alert state */
  readonly name: string;
  /** Delivers one alert; `deliveryId` is unique per alert, for the remote's de-duplication. Throws ChannelError. */
  send(notice: Notice, deliveryId: string): Promise<void>;
  close?(): Promise<void>;
}

/**
 * A channel that could not deliver. `retryAfterMs` (the remote's Retry-After) or neither flag: try again
 * later (the runtime redelivers with backoff); `permanent`: the request can never succeed (bad webhook,
 * refused payload), so the alert is dropped for that channel and the change dead-lettered.
 */
export class ChannelError extends Error {
  readonly code = 'ALERT_CHANNEL_FAILED';
  readonly retryAfterMs: number | undefined;
  readonly permanent: boolean;
  constructor(readonly channel: string, message: string, opts: { retryAfterMs?: number | undefined; permanent?: boolean; cause?: unknown } = {}) {
    super(`${channel}: ${message}${opts.permanent ? ' (not retried: fix the channel configuration)' : ''}`, { cause: opts.cause });
    this.retryAfterMs = opts.retryAfterMs;
    this.permanent = opts.permanent ?? false;
  }
}


/** Translates an HTTP status into a ChannelError (429 and 5xx retried, other 4xx permanent). */
export function httpFailure(channel: string, status: number, body: string, retryAfter: string | null | undefined): ChannelError {
  const message = `HTTP ${status}: ${body.slice(0, 200)}`;
  if (status === 429) return new ChannelError(channel, message, { retryAfterMs: retryAfterMs(retryAfter) });
  if (status >= 500) return new ChannelError(channel, message);
  return new ChannelError(channel, message, { permanent: true });
}

export function createLogChannel(props: { log: Logger }): Channel {
  const log = props.log.child({ component: 'alerts', channel: 'log' });
  return {
    name: 'log',
    async send(notice, deliveryId) {
      log.warn({ alert: { kind: notice.kind, action: notice.action, dedupKey: notice.dedupKey, deliveryId, ...Object.fromEntries(detailsOf(notice)) } }, summaryOf(notice));
    },
  };
}

export { retryAfterMs };
