/**
 * A token bucket for a provider's request quota: `capacity` calls may go at once, then one more every
 * 60 000 / perMinute ms. take() waits for a token, so a burst of flushes is spread over the quota
 * instead of being rejected by the provider.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly refillPerMs: number;

  constructor(
    perMinute: number,
    private readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {
    this.refillPerMs = perMinute / 60_000;
    this.tokens = capacity;
    this.updatedAt = now();
  }

  /** Milliseconds until a token is available (0 when one is). */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.refillPerMs);
  }

  /** Waits for a token and takes it. */
  async take(): Promise<void> {
    for (let wait = this.waitMs(); wait > 0; wait = this.waitMs()) await new Promise((r) => setTimeout(r, wait));
    this.tokens -= 1;
  }

  private refill() {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.updatedAt) * this.refillPerMs);
    this.updatedAt = now;
  }
}
