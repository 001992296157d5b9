import { describe, expect, it } from 'vitest';
import { expiryDecisions, lowStockDecision, recoveryMargin, reorderSuggestion } from './alert-rules.ts';

/** Runs a sequence of available values through the hysteresis; returns the decisions that fired. */
function run(values: number[], reorderPoint: number, margin = recoveryMargin(reorderPoint)) {
  let low = false;
  const fired: string[] = [];
  for (const available of values) {
    const d = lowStockDecision({ available, reorderPoint, margin, low });
    if (d === 'trigger') low = true;
    if (d === 'resolve') low = false;
    if (d !== 'none') fired.push(`${d}@${available}`);
  }
  return fired;
}

describe('low-stock hysteresis', () => {
  it('fires once when available drops below the reorder point and stays there', () => {
    expect(run([25, 20, 19, 18, 5], 20)).toEqual(['trigger@19']);
  });

  it('does not flap while available oscillates around the reorder point', () => {
    const values = Array.from({ length: 500 }, (_, i) => (i % 2 ? 21 : 19));
    expect(run(values, 20)).toEqual(['trigger@19']);
  });

  it('recovers only at reorder point + margin, then fires again on the next crossing', () => {
    expect(run([19, 21, 22, 21, 19], 20)).toEqual(['trigger@19', 'resolve@22', 'trigger@19']);
  });

  it('uses max(1, 10 % of the reorder point) as the default margin, or the configured one', () => {
    expect(recoveryMargin(5)).toBe(1);
    expect(recoveryMargin(20)).toBe(2);
    expect(recoveryMargin(200)).toBe(20);
    expect(recoveryMargin(200, 3)).toBe(3);
  });

  it('never fires for a reorder point of 0, and closes an open alert when the point is lowered to 0', () => {
    expect(lowStockDecision({ available: 0, reorderPoint: 0, margin: 1, low: false })).toBe('none');
    expect(lowStockDecision({ available: 0, reorderPoint: 0, margin: 1, low: true })).toBe('resolve');
  });

  it('suggests reorder_qty, else twice the reorder point minus what is available', () => {
    expect(reorderSuggestion(50, 20, 3)).toBe(50);
    expect(reorderSuggestion(0, 20, 3)).toBe(37);
    expect(reorderSuggestion(0, 20, 45)).toBe(0);
  });
});

describe('lot expiry', () => {
  const base = { today: '2026-12-03', windowDays: 30, alerted: new Set<string>() };

  it('alerts a lot expiring within the window once', () => {
    expect(expiryDecisions({ ...base, expiresOn: '2026-12-20', onHand: 5 })).toEqual(['expiring']);
    expect(expiryDecisions({ ...base, expiresOn: '2026-12-20', onHand: 5, alerted: new Set(['expiring']) })).toEqual([]);
  });

  it('says nothing about lots beyond the window or without stock', () => {
    expect(expiryDecisions({ ...base, expiresOn: '2027-01-03', onHand: 5 })).toEqual([]);
    expect(expiryDecisions({ ...base, expiresOn: '2027-01-02', onHand: 5 })).toEqual(['expiring']);
    expect(expiryDecisions({ ...base, expiresOn: '2026-12-01', onHand: 0 })).toEqual([]);
  });

  it('alerts expired stock on hand once, on its expiry date or after, even if it was alerted as expiring', () => {
    expect(expiryDecisions({ ...base, expiresOn: '2026-12-03', onHand: 2 })).toEqual(['expired']);
    expect(expiryDecisions({ ...base, expiresOn: '2026-11-01', onHand: 2, alerted: new Set(['expiring']) })).toEqual(['expired']);
    expect(expiryDecisions({ ...base, expiresOn: '2026-11-01', onHand: 2, alerted: new Set(['expiring', 'expired']) })).toEqual([]);
  });
});
