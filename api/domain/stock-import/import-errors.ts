/**
 * What an import can refuse with. File-level refusals (wrong type, zip bomb, macros, too big) are their
 * own ApiErrors; row problems are collected as RowErrors and refused together as one 422 import_invalid,
 * so the caller can fix the whole file in one pass. Nothing is applied when any of these is thrown.
 */
import { ApiError } from '../../errors.ts';

/** One problem with one row of the file; `row` is the 1-based row (line) number as in the file, header = 1. */
export interface RowError {
  row: number;
  column?: string | undefined;
  code: string;
  message: string;
}

export class UnsupportedFile extends ApiError {
  constructor(message: string) {
    super(415, 'unsupported_file', `${message}; send a CSV (UTF-8) or XLSX file`);
  }
}

export class FileTooLarge extends ApiError {
  constructor(limit: number) {
    super(413, 'file_too_large', `the file is larger than ${limit} bytes; split it into smaller files`, { max_bytes: limit });
  }
}

export class TooManyRows extends ApiError {
  constructor(limit: number) {
    super(413, 'too_many_rows', `the file has more than ${limit} data rows; split it into smaller files`, { max_rows: limit });
  }
}

export class ZipBomb extends ApiError {
  constructor(reason: string) {
    super(422, 'zip_bomb', `the XLSX file was refused: ${reason}; re-save it from a spreadsheet program`, { reason });
  }
}

export class MacroFile extends ApiError {
  constructor(what: string) {
    super(422, 'macro_file', `the workbook contains macros (${what}); save it as a plain .xlsx workbook without macros`, { found: what });
  }
}

/** Sorts errors by row, keeps the first `cap` of them and says whether some were left off. */
export function reportErrors(errors: readonly RowError[], cap: number): { errors: RowError[]; error_count: number; truncated: boolean } {
  const sorted = [...errors].sort((a, b) => a.row - b.row);
  return { errors: sorted.slice(0, cap), error_count: errors.length, truncated: errors.length > cap };
}

export class ImportInvalid extends ApiError {
  constructor(errors: readonly RowError[], cap: number) {
    const report = reportErrors(errors, cap);
    const rows = new Set(errors.map((e) => e.row)).size;
    super(422, 'import_invalid', `${rows} row${rows === 1 ? '' : 's'} of the file ${rows === 1 ? 'has' : 'have'} errors; nothing was applied — fix them and import the file again`, report);
  }
}
