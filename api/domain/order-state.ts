/**
 * Order lifecycle. An order starts `reserved`; it ends confirmed (stock leaves), or cancelled,
 * payment_failed or expired (reservation released). Asking for the state an order is already in is a
 * harmless replay; any other move out of a final state is refused.
 */
import type { OrderStatus } from '../../db/schema.ts';

export type TargetStatus = Exclude<OrderStatus, 'reserved'>;

export type TransitionDecision = 'apply' | 'replay' | 'refuse';

/** Decides what asking an order in `from` to become `to` means. */
export function decideTransition(from: OrderStatus, to: TargetStatus): TransitionDecision {
  if (from === to) return 'replay';
  if (from === 'reserved') return 'apply';
  return 'refuse';
}

/** Whether reaching `to` takes the stock (confirm) or gives the reservation back. */
export function stockEffect(to: TargetStatus): 'consume' | 'release' {
  return to === 'confirmed' ? 'consume' : 'release';
}
