/**
 * The stock export as CSV (RFC 4180: CRLF rows, fields with quotes, commas or line breaks quoted, quotes
 * doubled), streamed page by page in (sku, location) order so a large catalogue never sits in memory.
 * Text that a spreadsheet would run as a formula (starting with = + - @, tab or CR) is neutralised with
 * a leading apostrophe (OWASP CSV injection). Each page is one consistent read; a row changed while
 * the export runs shows its state at the time its page was read.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';

export const EXPORT_COLUMNS = ['sku', 'name', 'category', 'location', 'on_hand', 'reserved', 'available', 'reorder_point', 'nearest_expiry', 'updated_at'] as const;

const PAGE_ROWS = 1_000;
const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV field: numbers as they are, text neutralised against formula injection and quoted when needed. */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return String(value);
  const safe = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) || safe !== safe.trim() ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function csvLine(fields: readonly (string | number | null | undefined)[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}

interface ExportRow {
  sku: string; name: string; category: string; location: string; on_hand: number; reserved: number;
  reorder_point: number; nearest_expiry: string | null; updated_at: Date;
}

async function page(db: Kysely<Database>, location: string | undefined, after: { sku: string; location: string } | undefined) {
  const { rows } = await sql<ExportRow>`
    SELECT s.sku, p.name, p.category, s.location, s.on_hand, s.reserved, p.reorder_point, s.updated_at,
           (SELECT min(l.expires_on) FROM lots l WHERE l.sku = s.sku AND l.location = s.location AND l.on_hand > 0) AS nearest_expiry
      FROM stock_levels s JOIN products p ON p.sku = s.sku
     WHERE (${location ?? null}::text IS NULL OR s.location = ${location ?? null})
       AND (${after?.sku ?? null}::text IS NULL OR (s.sku, s.location) > (${after?.sku ?? null}, ${after?.location ?? null}))
     ORDER BY s.sku, s.location
     LIMIT ${PAGE_ROWS}`.execute(db);
  return rows;
}

/** The CSV as a byte stream: the header, then the rows a page at a time as the reader pulls them. */
export function stockCsvStream(props: { db: Kysely<Database>; location?: string | undefined; onError?: (err: unknown) => void }): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let after: { sku: string; location: string } | undefined;
  let headerSent = false;
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(encoder.encode(csvLine(EXPORT_COLUMNS)));
        return;
      }
      if (done) return controller.close();
      try {
        const rows = await page(props.db, props.location, after);
        if (rows.length < PAGE_ROWS) done = true;
        if (rows.length === 0) return controller.close();
        after = rows[rows.length - 1]!;
        controller.enqueue(encoder.encode(rows.map((r) => csvLine([
          r.sku, r.name, r.category, r.location, r.on_hand, r.reserved, r.on_hand - r.reserved, r.reorder_point,
          r.nearest_expiry, new Date(r.updated_at).toISOString(),
        ])).join('')));
      } catch (err) {
        props.onError?.(err);
        controller.error(err);
      }
    },
  });
}
