import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isPermanent, redeliveryDelayMs } from './retry-policy.ts';

const FIFTEEN_MINUTES = 15 * 60_000;
const low = () => 0; // jitter at its minimum: half the base
const high = () => 1; // jitter at its (exclusive) maximum: the whole base

/** The un-jittered backoff for a delivery: 250 ms doubling per delivery, capped at 60 s. */
const BASES: [number, number][] = [
  [1, 250],
  [2, 500],
  [3, 1_000],
  [4, 2_000],
  [5, 4_000],
  [6, 8_000],
  [7, 16_000],
  [8, 32_000],
  [9, 60_000], // 64 s, capped
  [10, 60_000],
  [20, 60_000],
  [1_000, 60_000],
  [1_100, 60_000], // 2 ** 1099 overflows to Infinity: still the cap
];

afterEach(() => {
  vi.restoreAllMocks();
});

describe('redeliveryDelayMs: exponential backoff', () => {
  it.each(BASES)('delivery %i waits between half of and the whole of %i ms', (delivery, base) => {
    expect(redeliveryDelayMs(delivery, new Error('boom'), low)).toBe(base / 2);
    expect(redeliveryDelayMs(delivery, new Error('boom'), high)).toBe(base);
  });

  it('doubles with every delivery until the cap, then stays there', () => {
    const delays = Array.from({ length: 14 }, (_, i) => redeliveryDelayMs(i + 1, undefined, low));
    expect(delays).toEqual([125, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000]);
    for (let i = 1; i < delays.length; i += 1) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
  });

  it('never exceeds 60 s however many deliveries', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (delivery, r) => {
        const d = redeliveryDelayMs(delivery, new Error('x'), () => r);
        expect(d).toBeLessThanOrEqual(60_000);
        expect(d).toBeGreaterThanOrEqual(125);
        expect(Number.isInteger(d)).toBe(true);
      }),
    );
  });

  it('treats a delivery count below 1 as the first delivery', () => {
    expect(redeliveryDelayMs(0, undefined, low)).toBe(125);
    expect(redeliveryDelayMs(-5, undefined, high)).toBe(250);
  });
});

describe('redeliveryDelayMs: jitter', () => {
  it('spreads the delay linearly over [base/2, base] with the injected random', () => {
    // delivery 3: base 1000
    expect(redeliveryDelayMs(3, undefined, () => 0)).toBe(500);
    expect(redeliveryDelayMs(3, undefined, () => 0.25)).toBe(625);
    expect(redeliveryDelayMs(3, undefined, () => 0.5)).toBe(750);
    expect(redeliveryDelayMs(3, undefined, () => 0.75)).toBe(875);
    expect(redeliveryDelayMs(3, undefined, () => 0.999)).toBe(1_000); // 999.5 rounds up
  });

  it('rounds to whole milliseconds', () => {
    expect(redeliveryDelayMs(1, undefined, () => 0.5)).toBe(188); // 125 + 62.5
    expect(redeliveryDelayMs(1, undefined, () => 0.1)).toBe(138); // 125 + 12.5
  });

  it('stays within [base/2, base] for every random value in [0, 1) and grows with it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BASES),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        ([delivery, base], r1, r2) => {
          const d1 = redeliveryDelayMs(delivery, undefined, () => r1);
          const d2 = redeliveryDelayMs(delivery, undefined, () => r2);
          expect(d1).toBeGreaterThanOrEqual(base / 2);
          expect(d1).toBeLessThanOrEqual(base);
          if (r1 <= r2) expect(d1).toBeLessThanOrEqual(d2);
        },
      ),
    );
  });

  it('draws exactly one random number per backoff', () => {
    const random = vi.fn(() => 0.5);
    redeliveryDelayMs(4, new Error('x'), random);
    expect(random).toHaveBeenCalledTimes(1);
  });

  it('uses Math.random when no random is injected', () => {
    const spy = vi.spyOn(Math, 'random').mockReturnValue(0.5);
    expect(redeliveryDelayMs(3, new Error('x'))).toBe(750);
    expect(spy).toHaveBeenCalledTimes(1);
  });
});

describe('redeliveryDelayMs: Retry-After', () => {
  it('waits exactly what the remote asked for, whatever the delivery count, without jitter', () => {
    const random = vi.fn(() => 0.5);
    expect(redeliveryDelayMs(1, { retryAfterMs: 5_000 }, random)).toBe(5_000);
    expect(redeliveryDelayMs(9, { retryAfterMs: 5_000 }, random)).toBe(5_000);
    expect(redeliveryDelayMs(3, { retryAfterMs: 90_000 }, random)).toBe(90_000); // above the backoff cap: still honoured
    expect(random).not.toHaveBeenCalled();
  });

  it('honours zero', () => {
    expect(redeliveryDelayMs(5, { retryAfterMs: 0 }, high)).toBe(0);
  });

  it('caps the wait at 15 minutes', () => {
    expect(redeliveryDelayMs(1, { retryAfterMs: FIFTEEN_MINUTES - 1 }, low)).toBe(FIFTEEN_MINUTES - 1);
    expect(redeliveryDelayMs(1, { retryAfterMs: FIFTEEN_MINUTES }, low)).toBe(FIFTEEN_MINUTES);
    expect(redeliveryDelayMs(1, { retryAfterMs: FIFTEEN_MINUTES + 1 }, low)).toBe(FIFTEEN_MINUTES);
    expect(redeliveryDelayMs(1, { retryAfterMs: 24 * 3_600_000 }, low)).toBe(FIFTEEN_MINUTES);
    expect(redeliveryDelayMs(1, { retryAfterMs: Number.POSITIVE_INFINITY }, low)).toBe(FIFTEEN_MINUTES);
  });

  it('reads the hint off an Error', () => {
    const err = Object.assign(new Error('429 Too Many Requests'), { retryAfterMs: 2_000 });
    expect(redeliveryDelayMs(1, err, low)).toBe(2_000);
  });

  it('falls back to backoff for a negative, NaN or non-numeric Retry-After', () => {
    expect(redeliveryDelayMs(3, { retryAfterMs: -1 }, low)).toBe(500);
    expect(redeliveryDelayMs(3, { retryAfterMs: Number.NaN }, low)).toBe(500);
    expect(redeliveryDelayMs(3, { retryAfterMs: '5000' }, low)).toBe(500);
    expect(redeliveryDelayMs(3, { retryAfterMs: null }, low)).toBe(500);
  });

  it('falls back to backoff for errors that are not objects', () => {
    expect(redeliveryDelayMs(2, undefined, low)).toBe(250);
    expect(redeliveryDelayMs(2, null, low)).toBe(250);
    expect(redeliveryDelayMs(2, 'boom', low)).toBe(250);
    expect(redeliveryDelayMs(2, 42, low)).toBe(250);
    expect(redeliveryDelayMs(2, new Error('plain'), low)).toBe(250);
  });
});

describe('isPermanent', () => {
  it('is true when the error says it can never succeed', () => {
    expect(isPermanent({ permanent: true })).toBe(true);
    expect(isPermanent(Object.assign(new Error('bad row'), { permanent: true }))).toBe(true);
    expect(isPermanent({ permanent: true, retryAfterMs: 1_000 })).toBe(true);
  });

  it('is false otherwise', () => {
    expect(isPermanent({ permanent: false })).toBe(false);
    expect(isPermanent({ retryAfterMs: 1_000 })).toBe(false);
    expect(isPermanent({})).toBe(false);
    expect(isPermanent(new Error('transient'))).toBe(false);
    expect(isPermanent(undefined)).toBe(false);
    expect(isPermanent(null)).toBe(false);
    expect(isPermanent('permanent')).toBe(false);
    expect(isPermanent(0)).toBe(false);
  });
});
