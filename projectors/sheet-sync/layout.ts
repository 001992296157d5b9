/**
 * The workbook layout every mirror shares: one tab per stock location (one row per sku stocked there),
 * a "Lots" tab and a "Bundles" tab. Only on-hand and reorder point are editable, and only on location
 * tabs. The hidden columns at the end hold the row version and the values the sync last wrote to the
 * editable cells, so an edit is "editable cell ≠ its synced copy" — true across restarts too.
 */
import type { CellValue, TabSpec } from './sheet-target.ts';

export const LOTS_TAB = 'Lots';
export const BUNDLES_TAB = 'Bundles';

/** Column positions (0-based) of a location tab. */
export const STOCK = {
  sku: 0,
  name: 1,
  category: 2,
  onHand: 3,
  reserved: 4,
  available: 5,
  reorderPoint: 6,
  nearestExpiry: 7,
  updatedAt: 8,
  version: 9,
  syncedOnHand: 10,
  syncedReorderPoint: 11,
} as const;

export const STOCK_HEADER = [
  'SKU', 'Name', 'Category', 'On hand', 'Reserved', 'Available', 'Reorder point', 'Nearest expiry', 'Updated at',
  'version', 'synced on hand', 'synced reorder point',
];

export const LOTS_HEADER = ['Lot', 'SKU', 'Location', 'Expires on', 'On hand', 'Reserved', 'version'];
export const BUNDLES_HEADER = ['Bundle', 'Name', 'Location', 'Components', 'Available'];

/** Which editable column a person may change, and the hidden column holding its synced copy. */
export const EDITABLE = [
  { field: 'on_hand', column: STOCK.onHand, synced: STOCK.syncedOnHand, label: 'On hand' },
  { field: 'reorder_point', column: STOCK.reorderPoint, synced: STOCK.syncedReorderPoint, label: 'Reorder point' },
] as const;

export type EditableField = (typeof EDITABLE)[number]['field'];

export function stockTabSpec(location: string): TabSpec {
  return { title: location, header: STOCK_HEADER, firstHiddenColumn: STOCK.version, editableColumns: [STOCK.onHand, STOCK.reorderPoint] };
}

export const LOTS_TAB_SPEC: TabSpec = { title: LOTS_TAB, header: LOTS_HEADER, firstHiddenColumn: 6, editableColumns: [] };
export const BUNDLES_TAB_SPEC: TabSpec = { title: BUNDLES_TAB, header: BUNDLES_HEADER, firstHiddenColumn: BUNDLES_HEADER.length, editableColumns: [] };

/** Tabs for a set of locations, in a stable order: locations by code, then Lots, then Bundles. */
export function workbookTabs(locations: Iterable<string>): TabSpec[] {
  return [...[...locations].sort().map(stockTabSpec), LOTS_TAB_SPEC, BUNDLES_TAB_SPEC];
}

/** A location code can never collide with the fixed tabs: codes are upper-case, the fixed tabs are not. */
export function isLocationTab(title: string): boolean {
  return title !== LOTS_TAB && title !== BUNDLES_TAB;
}

/** Column letters for a 0-based column index (0 → A, 25 → Z, 26 → AA). */
export function columnLetter(index: number): string {
  let n = index + 1;
  let out = '';
  while (n > 0) {
    const rem = (n - 1) % 26;
    out = String.fromCharCode(65 + rem) + out;
    n = Math.floor((n - 1) / 26);
  }
  return out;
}

/** A1 reference of one cell, e.g. cellRef(3, 12) → "D12". */
export function cellRef(column: number, row: number): string {
  return `${columnLetter(column)}${row}`;
}

/** A timestamp as the sheets show it: UTC to the second, e.g. "2026-12-03 13:40:05Z". */
export function sheetTimestamp(value: string | Date): string {
  const iso = typeof value === 'string' ? new Date(value).toISOString() : value.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

/** True when two cells hold the same value as far as the sheet is concerned ("" and null are both empty). */
export function sameCell(a: CellValue | undefined, b: CellValue | undefined): boolean {
  const x = a === '' || a === undefined ? null : a;
  const y = b === '' || b === undefined ? null : b;
  return x === y;
}
