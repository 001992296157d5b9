/**
 * FEFO lot picking: take stock from the lot that expires first, splitting across lots when one is not
 * enough. A lot is sellable only while its expiry date is after today (a lot expiring today is not sold),
 * so expired stock is never picked.
 */
export interface PickableLot {
  id: string;
  expiresOn: string; // YYYY-MM-DD
  available: number;
}

export interface LotPick {
  lotId: string;
  qty: number;
}

/** True when a lot expiring on `expiresOn` may still be sold on `today` (both YYYY-MM-DD). */
export function isSellable(expiresOn: string, today: string): boolean {
  return expiresOn > today;
}

/**
 * Picks `qty` units from `lots` earliest-expiry first (ties by id). Returns the picks and how many units
 * could not be found (`short` > 0 means the request cannot be met; the picks are then partial).
 * `lots` is not modified; `taken` carries what earlier picks in the same order already used.
 */
export function pickFefo(
  lots: readonly PickableLot[],
  qty: number,
  today: string,
  taken: Map<string, number> = new Map(),
): { picks: LotPick[]; short: number } {
  const ordered = lots
    .filter((lot) => isSellable(lot.expiresOn, today))
    .sort((a, b) => (a.expiresOn === b.expiresOn ? compareIds(a.id, b.id) : a.expiresOn < b.expiresOn ? -1 : 1));
  const picks: LotPick[] = [];
  let remaining = qty;
  for (const lot of ordered) {
    if (remaining === 0) break;
    const free = lot.available - (taken.get(lot.id) ?? 0);
    if (free <= 0) continue;
    const take = Math.min(free, remaining);
    picks.push({ lotId: lot.id, qty: take });
    taken.set(lot.id, (taken.get(lot.id) ?? 0) + take);
    remaining -= take;
  }
  return { picks, short: remaining };
}

function compareIds(a: string, b: string): number {
  // ids are bigint strings: shorter is smaller
  return a.length === b.length ? (a < b ? -1 : a > b ? 1 : 0) : a.length - b.length;
}
