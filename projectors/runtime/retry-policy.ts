/**
 * How long a projector waits before a failed message is redelivered: exponential backoff with jitter,
 * capped, or exactly what the remote asked for (Retry-After) when the error carries it.
 */
export interface RetryHint {
  /** the remote's Retry-After, in milliseconds */
  retryAfterMs?: number;
  /** true when the message can never succeed (bad data): dead-letter it at once */
  permanent?: boolean;
}

export function redeliveryDelayMs(deliveryCount: number, err: unknown, random: () => number = Math.random): number {
  const hint = err as RetryHint | undefined;
  if (hint && typeof hint.retryAfterMs === 'number' && hint.retryAfterMs >= 0) return Math.min(hint.retryAfterMs, 15 * 60_000);
  const base = Math.min(60_000, 250 * 2 ** Math.max(0, deliveryCount - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

export function isPermanent(err: unknown): boolean {
  return Boolean((err as RetryHint | undefined)?.permanent);
}
