/**
 * What happens after a delivery attempt: delivered on 2xx; otherwise the next attempt after an
 * exponential backoff with jitter (or exactly the receiver's Retry-After on 429/503), capped, until the
 * retry window — counted from the first attempt — is spent, then dead. Also whether the endpoint has
 * now been failing long enough to be disabled. Pure: the worker supplies the times and the randomness.
 */

export interface RetrySettings {
  /** first backoff step (ms) */
  baseDelayMs: number;
  /** longest backoff step (ms) */
  maxDelayMs: number;
  /** how long after its first attempt a delivery is still retried (ms) */
  retryWindowMs: number;
  /** how long an endpoint may fail without a single success before it is disabled (ms) */
  disableAfterMs: number;
}

export type AttemptOutcome =
  | { ok: true }
  | { ok: false; error: string; status?: number | undefined; retryAfterMs?: number | undefined };

export type DeliveryDecision =
  | { status: 'delivered' }
  | { status: 'pending'; nextAttemptAt: Date; error: string }
  | { status: 'dead'; error: string };

/** Backoff before attempt number `attempts + 1` (attempts already made ≥ 1): equal jitter over base·2^(n-1). */
export function backoffMs(attempts: number, settings: Pick<RetrySettings, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const step = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** Math.min(Math.max(0, attempts - 1), 40));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** The delivery's next state after an attempt made at `now` (its `attempts` include this one). */
export function decideDelivery(props: {
  outcome: AttemptOutcome;
  attempts: number;
  firstAttemptAt: Date;
  now: Date;
  settings: RetrySettings;
  random?: () => number;
}): DeliveryDecision {
  const { outcome, settings, now } = props;
  if (outcome.ok) return { status: 'delivered' };
  const windowEnd = props.firstAttemptAt.getTime() + settings.retryWindowMs;
  if (now.getTime() >= windowEnd) return { status: 'dead', error: outcome.error };
  const honoured = outcome.retryAfterMs !== undefined && (outcome.status === 429 || outcome.status === 503);
  const delay = honoured ? Math.min(outcome.retryAfterMs!, settings.maxDelayMs) : backoffMs(props.attempts, settings, props.random);
  // the last try happens at the end of the window rather than never
  return { status: 'pending', nextAttemptAt: new Date(Math.min(now.getTime() + delay, windowEnd)), error: outcome.error };
}

/** True when an endpoint failing since `failingSince` (no success since) is to be disabled at `now`. */
export function shouldDisable(failingSince: Date, now: Date, settings: Pick<RetrySettings, 'disableAfterMs'>): boolean {
  return now.getTime() - failingSince.getTime() >= settings.disableAfterMs;
}
