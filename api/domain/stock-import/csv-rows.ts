/**
 * CSV → raw rows with csv-parse (streaming parser, fed from the upload's bytes). The first record is
 * the header; every later record must have as many fields (a row that does not is reported, not
 * guessed at). Row numbers are the file's line numbers, computed from byte offsets because csv-parse's
 * own line count drifts on CRLF files with blank lines.
 */
import { Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import type { RowError } from './import-errors.ts';
import { TooManyRows } from './import-errors.ts';
import { mapHeader, PROGRESS_EVERY, type Column, type ParseOptions, type RawRow } from './row-parser.ts';

const LF = 0x0a;
const CR = 0x0d;

/** Line numbers of byte offsets, for offsets that only grow. */
function lineCounter(bytes: Uint8Array) {
  let pos = 0;
  let line = 1;
  return {
    /** the line of the first byte at or after `offset` that is not a line break */
    lineOfRecordAt(offset: number): number {
      let start = offset;
      while (start < bytes.length && (bytes[start] === LF || bytes[start] === CR)) start++;
      for (; pos < start; pos++) if (bytes[pos] === LF) line++;
      return line;
    },
  };
}

function* chunksOf(bytes: Buffer, size = 64 * 1024): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/** Reads the header and data rows of a CSV file. */
export async function parseCsvRows(bytes: Buffer, options: ParseOptions): Promise<{ rows: RawRow[]; errors: RowError[] }> {
  const rows: RawRow[] = [];
  const errors: RowError[] = [];
  const lines = lineCounter(bytes);
  let columns: (Column | null)[] | undefined;
  let headerWidth = 0;
  let recordEnd = 0;
  let headerBroken = false;

  const parser = parse({
    bom: true,
    skip_empty_lines: true,
    relax_column_count: false,
    skip_records_with_error: true,
    max_record_size: options.limits.maxRecordBytes,
    on_skip: (err) => {
      const context = err as unknown as { bytes?: number; record?: unknown[] } | undefined;
      const row = lines.lineOfRecordAt(recordEnd);
      recordEnd = context?.bytes ?? recordEnd;
      if (err?.code === 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH' || err?.code === 'CSV_RECORD_INCONSISTENT_COLUMNS') {
        const got = Array.isArray(context?.record) ? context.record.length : 'another number of';
        errors.push({ row, code: 'column_count', message: `the row has ${got} fields, the header has ${headerWidth}` });
      } else {
        errors.push({ row, code: 'malformed_csv', message: err?.message ?? 'the row could not be read' });
      }
      return undefined;
    },
    on_record: (record: string[], info) => {
      const row = lines.lineOfRecordAt(recordEnd);
      recordEnd = info.bytes;
      if (!columns) {
        const header = mapHeader(record, row, options.fixedLocation);
        columns = header.columns;
        headerWidth = record.length;
        errors.push(...header.errors);
        headerBroken = header.errors.length > 0;
        return null;
      }
      if (rows.length >= options.limits.maxRows) throw new TooManyRows(options.limits.maxRows);
      const cells: RawRow['cells'] = {};
      columns.forEach((column, i) => {
        if (column) cells[column] = record[i] ?? '';
      });
      rows.push({ row, cells });
      if (rows.length % PROGRESS_EVERY === 0) options.onProgress?.(rows.length);
      return null;
    },
  });

  try {
    // records are collected in on_record (in file order, with their offsets); the stream yields nothing
    await Readable.from(chunksOf(bytes)).pipe(parser).toArray();
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    errors.push({ row: lines.lineOfRecordAt(recordEnd), code: 'malformed_csv', message: `${err.message}; nothing after this point was read` });
  }
  return { rows: headerBroken ? [] : rows, errors };
}
