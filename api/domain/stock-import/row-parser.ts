/**
 * Turns an uploaded file into raw rows: the header is mapped to the import's columns (case-insensitive,
 * `on_hand` is an alias of `counted`, unknown columns are ignored so an export can be edited and
 * imported back), each data row keeps its row number as in the file, and structural problems (a row
 * with the wrong number of fields, a broken header) become RowErrors. Cell text is only ever data:
 * formula cells are kept as such for the validator to refuse, never evaluated.
 */
import { parseCsvRows } from './csv-rows.ts';
import type { FileFormat } from './file-sniffer.ts';
import type { RowError } from './import-errors.ts';
import type { ImportLimits } from './limits.ts';
import { parseXlsxRows } from './xlsx-rows.ts';

export const COLUMNS = ['sku', 'location', 'counted', 'lot_code', 'note'] as const;
export type Column = (typeof COLUMNS)[number];

/** A cell as the file holds it: text, a number (XLSX), or something the validator will refuse. */
export type Cell = string | number | { formula: string } | { error: string };

export interface RawRow {
  row: number;
  cells: Partial<Record<Column, Cell>>;
}

export interface ParsedFile {
  format: FileFormat;
  rows: RawRow[];
  /** structural errors: header problems, rows the parser could not split into the header's fields */
  errors: RowError[];
}

export interface ParseOptions {
  limits: Pick<ImportLimits, 'maxRows' | 'maxRecordBytes'>;
  /** the file need not have a location column (every row is at this location) */
  fixedLocation?: string | undefined;
  /** called every few thousand rows with the number of data rows read so far */
  onProgress?: ((rows: number) => void) | undefined;
}

const ALIASES: Record<string, Column> = { on_hand: 'counted', lot: 'lot_code' };
export const PROGRESS_EVERY = 5_000;

/** Maps header cells to columns (null = ignored); a header without the required columns is an error. */
export function mapHeader(names: readonly string[], headerRow: number, fixedLocation?: string): { columns: (Column | null)[]; errors: RowError[] } {
  const errors: RowError[] = [];
  const seen = new Map<Column, string>();
  const columns = names.map((raw) => {
    const name = raw.trim().toLowerCase().replace(/[\s-]+/g, '_');
    const column = (COLUMNS as readonly string[]).includes(name) ? (name as Column) : ALIASES[name];
    if (!column) return null;
    const earlier = seen.get(column);
    if (earlier !== undefined) {
      errors.push({ row: headerRow, column, code: 'duplicate_column', message: `columns "${earlier}" and "${raw.trim()}" both give ${column}; keep one` });
      return null;
    }
    seen.set(column, raw.trim());
    return column;
  });
  const required: Column[] = fixedLocation ? ['sku', 'counted'] : ['sku', 'location', 'counted'];
  for (const column of required) {
    if (!seen.has(column)) {
      const also = column === 'counted' ? ' (or on_hand)' : '';
      errors.push({ row: headerRow, column, code: 'missing_column', message: `the header has no ${column}${also} column; the first row must name the columns sku, location, counted, and optionally lot_code, note` });
    }
  }
  return { columns, errors };
}

/** Reads all rows of a CSV or the first worksheet of an XLSX file. Throws TooManyRows past the limit. */
export async function parseRows(bytes: Buffer, format: FileFormat, options: ParseOptions): Promise<ParsedFile> {
  const { rows, errors } = format === 'csv' ? await parseCsvRows(bytes, options) : await parseXlsxRows(bytes, options);
  if (rows.length === 0 && errors.length === 0) {
    errors.push({ row: 1, code: 'empty_file', message: 'the file has no data rows: the first row names the columns, the rows below it hold the counts' });
  }
  return { format, rows, errors };
}
