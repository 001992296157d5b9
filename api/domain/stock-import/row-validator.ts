/**
 * Checks every row of an import and collects every problem with its row number (never stopping at the
 * first): first each row on its own (zod: sku, location and lot code shapes, counted a whole number in
 * range, no formula cells, no text that a spreadsheet would run as a formula), then the rows against
 * the catalog and each other (known simple product, known location, lot given exactly for lot-tracked
 * products and existing, no (sku, location, lot) counted twice).
 */
import { z } from '@hono/zod-openapi';
import { LocationCode, LotCode, Note, Sku } from '../../routes/schemas.ts';
import type { RowError } from './import-errors.ts';
import { MAX_COUNTED } from './limits.ts';
import type { Cell, Column, RawRow } from './row-parser.ts';

/** A row that passed the per-row checks. */
export interface CountRow {
  row: number;
  sku: string;
  location: string;
  counted: number;
  lot_code?: string | undefined;
  note?: string | undefined;
}

/** What the catalog says about the rows' products, locations and lots. */
export interface CatalogFacts {
  products: ReadonlyMap<string, { kind: 'simple' | 'bundle'; lot_tracked: boolean }>;
  locations: ReadonlySet<string>;
  /** lot id by lotKey(sku, location, lot_code) */
  lots: ReadonlyMap<string, string>;
}

export function lotKey(sku: string, location: string, lotCode: string): string {
  return `${sku}\u0000${location}\u0000${lotCode}`;
}

const RowShape = z.object({
  sku: Sku,
  location: LocationCode,
  counted: z.number().int().min(0).max(MAX_COUNTED),
  lot_code: LotCode.optional(),
  note: Note.optional(),
});

/** Leading characters a spreadsheet treats as the start of a formula (OWASP CSV injection). */
const FORMULA_START = /^[=+\-@]/;
const TEXT_COLUMNS = ['sku', 'location', 'lot_code', 'note'] as const satisfies readonly Column[];

type CellCheck = { value: string | number | undefined } | { error: RowError };

function textCell(row: number, column: Column, cell: Cell | undefined): CellCheck {
  if (cell === undefined) return { value: undefined };
  if (typeof cell === 'object') return { error: refusedCell(row, column, cell) };
  const text = String(cell).trim();
  if (text === '') return { value: undefined };
  if (FORMULA_START.test(text)) {
    return { error: { row, column, code: 'formula_injection', message: `${column} starts with "${text[0]}": values a spreadsheet would run as a formula are refused` } };
  }
  return { value: text };
}

function countedCell(row: number, cell: Cell | undefined): CellCheck {
  if (cell === undefined) return { value: undefined };
  if (typeof cell === 'object') return { error: refusedCell(row, 'counted', cell) };
  if (typeof cell === 'number') return { value: cell };
  const text = cell.trim();
  if (text === '') return { value: undefined };
  if (!/^\d{1,9}$/.test(text)) return { error: { row, column: 'counted', code: 'invalid_value', message: `counted must be a whole number ≥ 0, got "${text.slice(0, 40)}"` } };
  return { value: Number(text) };
}

function refusedCell(row: number, column: Column, cell: { formula: string } | { error: string }): RowError {
  return 'formula' in cell
    ? { row, column, code: 'formula_cell', message: `${column}: formula cells are not accepted; paste the value instead` }
    : { row, column, code: 'invalid_value', message: `${column} holds the error value ${cell.error}` };
}

function shapeMessage(column: string, issue: z.core.$ZodIssue): string {
  if (column === 'counted') {
    if (issue.code === 'too_big') return `counted must be at most ${MAX_COUNTED.toLocaleString('en')}`;
    return 'counted must be a whole number ≥ 0';
  }
  return `${column}: ${issue.message}`;
}

/** Checks each row on its own; returns the rows that passed and the errors of those that did not. */
export function checkRowShapes(rows: readonly RawRow[], fixedLocation?: string): { rows: CountRow[]; errors: RowError[] } {
  const ok: CountRow[] = [];
  const errors: RowError[] = [];
  for (const raw of rows) {
    const rowErrors: RowError[] = [];
    const values: Record<string, string | number | undefined> = {};
    for (const column of TEXT_COLUMNS) {
      const checked = textCell(raw.row, column, raw.cells[column]);
      if ('error' in checked) rowErrors.push(checked.error);
      else values[column] = checked.value;
    }
    const counted = countedCell(raw.row, raw.cells.counted);
    if ('error' in counted) rowErrors.push(counted.error);
    else values.counted = counted.value;

    if (fixedLocation) {
      if (values.location === undefined) values.location = fixedLocation;
      else if (values.location !== fixedLocation) {
        rowErrors.push({ row: raw.row, column: 'location', code: 'location_mismatch', message: `location is ${values.location}, but this import is for ${fixedLocation} only` });
      }
    }
    for (const column of ['sku', 'location', 'counted'] as const) {
      if (values[column] === undefined && !rowErrors.some((e) => e.column === column)) {
        rowErrors.push({ row: raw.row, column, code: 'required', message: `${column} is required` });
      }
    }
    if (rowErrors.length === 0) {
      const parsed = RowShape.safeParse(values);
      if (parsed.success) {
        ok.push({ row: raw.row, ...parsed.data });
        continue;
      }
      for (const issue of parsed.error.issues) {
        const column = String(issue.path[0] ?? '');
        rowErrors.push({ row: raw.row, column, code: 'invalid_value', message: shapeMessage(column, issue) });
      }
    }
    errors.push(...rowErrors);
  }
  return { rows: ok, errors };
}

/** Checks rows against the catalog and each other. */
export function checkRowsAgainstCatalog(rows: readonly CountRow[], facts: CatalogFacts): RowError[] {
  const errors: RowError[] = [];
  const firstSeen = new Map<string, number>();
  for (const r of rows) {
    const key = lotKey(r.sku, r.location, r.lot_code ?? '');
    const earlier = firstSeen.get(key);
    if (earlier !== undefined) {
      errors.push({ row: r.row, code: 'duplicate_row', message: `row ${earlier} already counts ${r.sku} at ${r.location}${r.lot_code ? ` lot ${r.lot_code}` : ''}` });
    } else {
      firstSeen.set(key, r.row);
    }
    const product = facts.products.get(r.sku);
    if (!product) errors.push({ row: r.row, column: 'sku', code: 'unknown_sku', message: `no such product: ${r.sku}` });
    else if (product.kind === 'bundle') errors.push({ row: r.row, column: 'sku', code: 'bundle_has_no_stock', message: `${r.sku} is a bundle; count its components instead` });
    if (!facts.locations.has(r.location)) errors.push({ row: r.row, column: 'location', code: 'unknown_location', message: `no such location: ${r.location}` });
    if (!product || product.kind === 'bundle') continue;
    if (product.lot_tracked && !r.lot_code) {
      errors.push({ row: r.row, column: 'lot_code', code: 'lot_required', message: `${r.sku} is lot-tracked: give the lot_code of the counted lot` });
    } else if (!product.lot_tracked && r.lot_code) {
      errors.push({ row: r.row, column: 'lot_code', code: 'not_lot_tracked', message: `${r.sku} is not lot-tracked: leave lot_code empty` });
    } else if (r.lot_code && facts.locations.has(r.location) && !facts.lots.has(lotKey(r.sku, r.location, r.lot_code))) {
      errors.push({ row: r.row, column: 'lot_code', code: 'unknown_lot', message: `lot ${r.lot_code} of ${r.sku} at ${r.location} does not exist; book it with a receipt first` });
    }
  }
  return errors;
}
