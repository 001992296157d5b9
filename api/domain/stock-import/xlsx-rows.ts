/**
 * XLSX → raw rows with exceljs' streaming reader, first worksheet only (call assertSafeXlsx first).
 * The first non-empty row is the header. Values are taken as stored: shared and inline strings as
 * text, numbers as numbers, rich text and hyperlinks as their text; a formula cell is kept as a formula
 * (the validator refuses it) and its cached result is never used.
 */
import { Readable } from 'node:stream';
import ExcelJS from 'exceljs';
import type { RowError } from './import-errors.ts';
import { TooManyRows } from './import-errors.ts';
import { mapHeader, PROGRESS_EVERY, type Cell, type Column, type ParseOptions, type RawRow } from './row-parser.ts';

/** exceljs' cell value → a Cell; undefined for an empty cell. */
export function toCell(value: unknown): Cell | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if ('formula' in v || 'sharedFormula' in v) return { formula: String(v.formula ?? v.sharedFormula ?? '') };
    if ('error' in v) return { error: String(v.error) };
    if (Array.isArray(v.richText)) return v.richText.map((part: { text?: unknown }) => String(part.text ?? '')).join('');
    if ('text' in v) return toCell(v.text);
  }
  return { error: 'unreadable cell' };
}

function headerName(cell: Cell | undefined): string {
  return typeof cell === 'string' || typeof cell === 'number' ? String(cell) : '';
}

/** Reads the header and data rows of the first worksheet. */
export async function parseXlsxRows(bytes: Buffer, options: ParseOptions): Promise<{ rows: RawRow[]; errors: RowError[] }> {
  const rows: RawRow[] = [];
  const errors: RowError[] = [];
  const reader = new ExcelJS.stream.xlsx.WorkbookReader(Readable.from([bytes]), {
    worksheets: 'emit', sharedStrings: 'cache', hyperlinks: 'ignore', styles: 'ignore', entries: 'ignore',
  });
  let columns: (Column | null)[] | undefined;
  try {
    for await (const worksheet of reader) {
      for await (const row of worksheet as AsyncIterable<ExcelJS.Row>) {
        const values = row.values as unknown[]; // sparse, 1-based by column
        const cells = values.map(toCell);
        if (cells.every((c) => c === undefined || (typeof c === 'string' && c.trim() === ''))) continue;
        if (!columns) {
          const names = Array.from({ length: values.length }, (_, i) => headerName(cells[i])).slice(1);
          const header = mapHeader(names, row.number, options.fixedLocation);
          if (header.errors.length > 0) return { rows: [], errors: header.errors };
          columns = header.columns;
          continue;
        }
        if (rows.length >= options.limits.maxRows) throw new TooManyRows(options.limits.maxRows);
        const mapped: RawRow['cells'] = {};
        columns.forEach((column, i) => {
          const cell = cells[i + 1];
          if (column && cell !== undefined) mapped[column] = cell;
        });
        rows.push({ row: row.number, cells: mapped });
        if (rows.length % PROGRESS_EVERY === 0) options.onProgress?.(rows.length);
      }
      break; // the first worksheet only
    }
  } catch (err) {
    if (err instanceof TooManyRows) throw err;
    errors.push({ row: rows.at(-1)?.row ?? 1, code: 'unreadable_xlsx', message: `the workbook could not be read (${(err as Error).message})` });
  }
  return { rows, errors };
}
