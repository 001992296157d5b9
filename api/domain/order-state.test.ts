import { describe, expect, it } from 'vitest';
import type { OrderStatus } from '../../db/schema.ts';
import { decideTransition, stockEffect, type TargetStatus } from './order-state.ts';

const TARGETS: TargetStatus[] = ['confirmed', 'cancelled', 'payment_failed', 'expired'];
const FINAL: TargetStatus[] = TARGETS;

describe('decideTransition', () => {
  it('applies every move out of reserved', () => {
    for (const to of TARGETS) expect(decideTransition('reserved', to)).toBe('apply');
  });

  it('treats asking for the current final state as a replay', () => {
    for (const s of FINAL) expect(decideTransition(s, s)).toBe('replay');
  });

  it('refuses every move from a final state to another state', () => {
    for (const from of FINAL as OrderStatus[]) {
      for (const to of TARGETS) {
        if (from !== to) expect(decideTransition(from, to), `${from} -> ${to}`).toBe('refuse');
      }
    }
  });
});

describe('stockEffect', () => {
  it('consumes stock only on confirm; every other end state releases', () => {
    expect(stockEffect('confirmed')).toBe('consume');
    expect(stockEffect('cancelled')).toBe('release');
    expect(stockEffect('payment_failed')).toBe('release');
    expect(stockEffect('expired')).toBe('release');
  });
});
