/**
 * The bounds every stock-count import is held to, in one place so the API route, the CLI and the tests
 * agree. A file over any of them is refused before a single row reaches the database.
 */
export interface ImportLimits {
  /** bytes of the uploaded file (CSV text or XLSX zip) */
  maxFileBytes: number;
  /** data rows after the header */
  maxRows: number;
  /** bytes of one CSV record */
  maxRecordBytes: number;
  /** sum of the declared uncompressed sizes of all zip entries */
  maxUnzippedBytes: number;
  /** zip entries (a real workbook has a few dozen) */
  maxZipEntries: number;
  /** compression ratio above which an entry bigger than `ratioFloorBytes` counts as a bomb */
  maxCompressionRatio: number;
  ratioFloorBytes: number;
  /** row errors reported in one answer (the count is always complete) */
  maxReportedErrors: number;
}

const MB = 1024 * 1024;

export const DEFAULT_IMPORT_LIMITS: ImportLimits = {
  maxFileBytes: 10 * MB,
  maxRows: 50_000,
  maxRecordBytes: 64 * 1024,
  maxUnzippedBytes: 50 * MB,
  maxZipEntries: 1_000,
  maxCompressionRatio: 100,
  ratioFloorBytes: 1 * MB,
  maxReportedErrors: 1_000,
};

/** The largest quantity one row may count (the same bound as an adjustment). */
export const MAX_COUNTED = 1_000_000;
