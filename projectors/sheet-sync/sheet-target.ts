/**
 * What the sheet-sync engine needs from a spreadsheet provider. Each mirror (local workbook, Google
 * Sheets, Excel Online) is a thin adapter implementing this; layout, coalescing, diffing and conflict
 * rules live in the engine, so all three behave the same.
 *
 * Coordinates: tabs by title, rows 1-based as in the sheet (row 1 is the header), columns 0-based
 * (0 = column A). Every value is written as raw data: a string is never evaluated as a formula.
 */

/** A cell value. In writes, `null` means "leave this cell as it is"; in reads, an empty cell. */
export type CellValue = string | number | boolean | null;

export interface TabSpec {
  title: string;
  header: string[];
  /** 0-based index of the first hidden column (hidden columns run to the end of the header) */
  firstHiddenColumn: number;
  /** 0-based columns a person may edit; every other cell, and the header row, is protected */
  editableColumns: number[];
}

/** Consecutive rows written from column A; a row shorter than the header leaves the rest unchanged. */
export interface RangeWrite {
  tab: string;
  startRow: number;
  rows: CellValue[][];
}

/** A note (Google note, Excel comment/note) on one cell; `text: null` removes it. */
export interface CellNote {
  tab: string;
  row: number;
  column: number;
  text: string | null;
}

export interface SheetTarget {
  /** short name for logs and metrics: "xlsx-local", "google-sheets", "excel-graph" */
  readonly kind: string;
  /**
   * True when reading the grid is cheap enough to do before every write (a local file, Graph): edits a
   * person made since the last read are then seen before a write could overwrite them.
   */
  readonly readBeforeWrite: boolean;
  /** Creates missing tabs with header, hidden columns and protection. Idempotent; may be called on every start. */
  ensureLayout(tabs: TabSpec[]): Promise<void>;
  /** Values of the given tabs from row 1 (header) down to the last non-empty row; missing tabs are absent from the map. */
  read(tabs: string[]): Promise<Map<string, CellValue[][]>>;
  /** Writes the ranges and notes in as few provider calls as it allows (one where it can). */
  write(ranges: RangeWrite[], notes: CellNote[]): Promise<void>;
  /**
   * Optional: calls `onChange` when the sheet may have been edited (the file was saved, a Drive push
   * notification arrived), so the engine reads early instead of waiting for its poll interval.
   * Returns a function that stops watching.
   */
  watch?(onChange: () => void): () => void;
  close(): Promise<void>;
}

/**
 * A provider call that failed. Adapters translate their client library's errors into this, so the
 * engine's retry logic is the same for every provider: 429 and 5xx (and network errors, status 0) are
 * retried with backoff, honouring Retry-After; other 4xx are bugs or configuration errors.
 */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
  }

  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status === 408 || this.status >= 500;
  }
}

export { retryAfterMs } from '../../lib/retry-after.ts';
