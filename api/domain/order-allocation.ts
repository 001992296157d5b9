/**
 * Decides what an order reserves, given the rows locked for it: bundle lines expand to components,
 * lot-tracked components are picked FEFO from sellable lots, everything else from the stock level.
 * Either every line is met or the result lists every short component — an order never half-reserves.
 */
import type { ShortLine } from '../errors.ts';
import { expandLine, type Component } from './bundle-availability.ts';
import { pickFefo, type PickableLot } from './fefo-picker.ts';

export interface CatalogEntry {
  sku: string;
  kind: 'simple' | 'bundle';
  lotTracked: boolean;
  components?: Component[];
}

export interface OrderLineRequest {
  lineNo: number;
  sku: string;
  qty: number;
}

export interface ReservationPick {
  lineNo: number;
  sku: string;
  lotId: string | null;
  qty: number;
}

export interface AllocationInput {
  location: string;
  today: string;
  lines: readonly OrderLineRequest[];
  catalog: ReadonlyMap<string, CatalogEntry>;
  /** on_hand - reserved per component sku at the order's location (absent = no stock row) */
  available: ReadonlyMap<string, number>;
  /** lots per lot-tracked component sku at the location */
  lots: ReadonlyMap<string, readonly PickableLot[]>;
}

export type Allocation = { ok: true; picks: ReservationPick[] } | { ok: false; short: ShortLine[] };

/** The component skus an order touches, sorted (the order in which their stock rows are locked). */
export function componentSkus(lines: readonly OrderLineRequest[], catalog: ReadonlyMap<string, CatalogEntry>): string[] {
  const skus = new Set<string>();
  for (const line of lines) for (const c of expandLine(line, catalog.get(line.sku)?.components)) skus.add(c.sku);
  return [...skus].sort();
}

/** Allocates every line or reports all shortfalls. */
export function allocateOrder(input: AllocationInput): Allocation {
  const picks: ReservationPick[] = [];
  const used = new Map<string, number>(); // units taken per component sku so far
  const lotTaken = new Map<string, number>();
  const requested = new Map<string, { qty: number; lineSkus: Set<string> }>();
  let short = false;

  for (const line of input.lines) {
    for (const need of expandLine(line, input.catalog.get(line.sku)?.components)) {
      const entry = requested.get(need.sku) ?? { qty: 0, lineSkus: new Set<string>() };
      entry.qty += need.qty;
      entry.lineSkus.add(line.sku);
      requested.set(need.sku, entry);

      const levelFree = (input.available.get(need.sku) ?? 0) - (used.get(need.sku) ?? 0);
      if (levelFree < need.qty) {
        short = true;
        continue;
      }
      if (input.catalog.get(need.sku)?.lotTracked) {
        const result = pickFefo(input.lots.get(need.sku) ?? [], need.qty, input.today, lotTaken);
        if (result.short > 0) {
          short = true;
          continue;
        }
        for (const p of result.picks) picks.push({ lineNo: line.lineNo, sku: need.sku, lotId: p.lotId, qty: p.qty });
      } else {
        picks.push({ lineNo: line.lineNo, sku: need.sku, lotId: null, qty: need.qty });
      }
      used.set(need.sku, (used.get(need.sku) ?? 0) + need.qty);
    }
  }
  if (!short) return { ok: true, picks };
  return { ok: false, short: shortLines(input, requested) };
}

function sellable(input: AllocationInput, sku: string): number {
  const level = Math.max(0, input.available.get(sku) ?? 0);
  if (!input.catalog.get(sku)?.lotTracked) return level;
  const lots = input.lots.get(sku) ?? [];
  const inLots = lots.filter((l) => l.expiresOn > input.today).reduce((sum, l) => sum + Math.max(0, l.available), 0);
  return Math.min(level, inLots);
}

function shortLines(input: AllocationInput, requested: Map<string, { qty: number; lineSkus: Set<string> }>): ShortLine[] {
  const lines: ShortLine[] = [];
  for (const [sku, req] of [...requested].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const available = sellable(input, sku);
    if (available < req.qty) {
      lines.push({ sku, location: input.location, requested: req.qty, available, line_skus: [...req.lineSkus].sort() });
    }
  }
  return lines;
}
