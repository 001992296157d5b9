import { mkdtemp, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ExcelJS from 'exceljs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SheetTarget, TabSpec } from '../sheet-sync/sheet-target.ts';
import { createXlsxTarget, LayoutMissing, WorkbookBusy, WorkbookUnreadable } from './xlsx-target.ts';

const STOCK: TabSpec = {
  title: 'Stock',
  header: ['sku', 'location', 'on_hand', 'reorder_point', 'version'],
  firstHiddenColumn: 4,
  editableColumns: [2, 3],
};
const LOTS: TabSpec = {
  title: 'Lots',
  header: ['sku', 'lot', 'expires', 'qty', 'version', 'lot_id'],
  firstHiddenColumn: 4,
  editableColumns: [3],
};

let dir: string;
let file: string;
let target: SheetTarget;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-xlsx-'));
  file = path.join(dir, 'nested', 'inventory.xlsx');
  target = createXlsxTarget({ path: file, watchIntervalMs: 100 });
});

afterEach(async () => {
  await target.close();
  await rm(dir, { recursive: true, force: true });
});

async function openFresh(): Promise<ExcelJS.Workbook> {
  const workbook = new ExcelJS.Workbook();
  await workbook.xlsx.readFile(file);
  return workbook;
}

function sheetOf(workbook: ExcelJS.Workbook, title: string): ExcelJS.Worksheet {
  const ws = workbook.getWorksheet(title);
  if (!ws) throw new Error(`no tab ${title}`);
  return ws;
}

/** A person edits the file with another program and saves it in place. */
async function editAsPerson(edit: (workbook: ExcelJS.Workbook) => void): Promise<void> {
  const workbook = await openFresh();
  edit(workbook);
  await workbook.xlsx.writeFile(file);
}

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function backdate(target: string): Promise<void> {
  const anHourAgo = new Date(Date.now() - 3_600_000);
  await utimes(target, anHourAgo, anHourAgo);
}

describe('ensureLayout', () => {
  it('creates the file with each tab: bold frozen header, hidden columns, protection, unlocked editable cells', async () => {
    await target.ensureLayout([STOCK, LOTS]);

    const workbook = await openFresh();
    expect(workbook.worksheets.map((ws) => ws.name)).toEqual(['Stock', 'Lots']);
    const ws = sheetOf(workbook, 'Stock');
    expect(ws.getRow(1).values).toEqual([undefined, ...STOCK.header]);
    expect(ws.getCell('A1').font?.bold).toBe(true);
    expect(ws.views[0]).toMatchObject({ state: 'frozen', ySplit: 1 });
    expect([1, 2, 3, 4, 5].map((c) => ws.getColumn(c).hidden)).toEqual([false, false, false, false, true]);
    expect((ws as unknown as { sheetProtection: unknown }).sheetProtection).toMatchObject({ sheet: true });
    // editable columns C and D are unlocked below the header, including rows nothing was written to yet
    for (const address of ['C2', 'D2', 'C500', 'D20000']) expect(ws.getCell(address).protection?.locked).toBe(false);
    for (const address of ['A2', 'B500', 'E2', 'C1', 'D1']) expect(ws.getCell(address).protection?.locked).not.toBe(false);
    expect([5, 6].map((c) => sheetOf(workbook, 'Lots').getColumn(c).hidden)).toEqual([true, true]);
  });

  it('is idempotent: a second call leaves the file untouched, a new tab is added beside the data', async () => {
    await target.ensureLayout([STOCK]);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SHEET-Q', 'WH1', 4, 2, 7]] }], []);
    const before = await stat(file);

    await target.ensureLayout([STOCK]);
    expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);

    await target.ensureLayout([STOCK, LOTS]);
    const grids = await target.read(['Stock', 'Lots']);
    expect(grids.get('Stock')?.[1]).toEqual(['SHEET-Q', 'WH1', 4, 2, 7]);
    expect(grids.get('Lots')).toEqual([LOTS.header]);
  });

  it('protects a sheet again after a person removed the protection', async () => {
    await target.ensureLayout([STOCK]);
    await editAsPerson((workbook) => sheetOf(workbook, 'Stock').unprotect());

    await target.ensureLayout([STOCK]);
    expect((sheetOf(await openFresh(), 'Stock') as unknown as { sheetProtection: unknown }).sheetProtection).toMatchObject({
      sheet: true,
    });
  });

  it('refuses to overwrite a file that is not a workbook', async () => {
    await target.ensureLayout([STOCK]);
    await writeFile(file, 'sku,location\nSHEET-Q,WH1\n');
    await backdate(file);

    await expect(target.ensureLayout([STOCK])).rejects.toBeInstanceOf(WorkbookUnreadable);
    await expect(target.read(['Stock'])).rejects.toThrow(/not a readable \.xlsx workbook/);
    expect(await readFile(file, 'utf8')).toBe('sku,location\nSHEET-Q,WH1\n');
  });
});

describe('write and read', () => {
  beforeEach(() => target.ensureLayout([STOCK, LOTS]));

  it('round-trips numbers, strings and booleans; "=1+1" stays a string cell, not a formula', async () => {
    await target.write(
      [{ tab: 'Stock', startRow: 2, rows: [['SHEET-Q', 'WH1', 12, 0, 3], ['=1+1', '007', 1.5, true, 4]] }],
      [],
    );

    const grids = await target.read(['Stock']);
    expect(grids.get('Stock')).toEqual([STOCK.header, ['SHEET-Q', 'WH1', 12, 0, 3], ['=1+1', '007', 1.5, true, 4]]);
    const cell = sheetOf(await openFresh(), 'Stock').getCell('A3');
    expect(cell.type).toBe(ExcelJS.ValueType.String);
    expect(cell.formula).toBeUndefined();
    expect(cell.value).toBe('=1+1');
  });

  it('leaves cells under null, and beyond a short row, unchanged', async () => {
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SHEET-Q', 'WH1', 12, 5, 3]] }], []);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [[null, null, 11], [null, 'WH2']] }], []);

    const grids = await target.read(['Stock']);
    expect(grids.get('Stock')?.slice(1)).toEqual([
      ['SHEET-Q', 'WH1', 11, 5, 3],
      [null, 'WH2', null, null, null],
    ]);
  });

  it('returns only the tabs that exist, and nothing for a missing file', async () => {
    expect([...(await target.read(['Stock', 'Nope'])).keys()]).toEqual(['Stock']);
    await unlink(file);
    expect((await target.read(['Stock'])).size).toBe(0);
  });

  it('recreates a deleted tab or file from its layout when writing to it', async () => {
    await editAsPerson((workbook) => workbook.removeWorksheet(sheetOf(workbook, 'Lots').id));
    await target.write([{ tab: 'Lots', startRow: 2, rows: [['SHEET-Q', 'L1']] }], []);
    expect((await target.read(['Lots'])).get('Lots')).toEqual([LOTS.header, ['SHEET-Q', 'L1', null, null, null, null]]);
    expect(sheetOf(await openFresh(), 'Lots').getColumn(5).hidden).toBe(true);

    await unlink(file);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SHEET-Q']] }], []);
    expect((await target.read(['Stock'])).get('Stock')?.[1]?.[0]).toBe('SHEET-Q');

    const stranger = createXlsxTarget({ path: file });
    await expect(stranger.write([{ tab: 'Other', startRow: 2, rows: [['X']] }], [])).rejects.toBeInstanceOf(LayoutMissing);
  });

  it('keeps protection, hidden columns and column widths across writes', async () => {
    const widthBefore = sheetOf(await openFresh(), 'Stock').getColumn(1).width;
    for (let i = 0; i < 3; i++) await target.write([{ tab: 'Stock', startRow: 2 + i, rows: [['SKU', 'WH1', i, 0, 1]] }], []);

    const ws = sheetOf(await openFresh(), 'Stock');
    expect((ws as unknown as { sheetProtection: unknown }).sheetProtection).toMatchObject({ sheet: true });
    expect(ws.getColumn(5).hidden).toBe(true);
    expect(ws.getColumn(1).width).toBe(widthBefore);
    expect(ws.getCell('C4').protection?.locked).toBe(false);
    expect(ws.getCell('A4').protection?.locked).not.toBe(false);
  });

  it('saves atomically, leaving no temporary files behind', async () => {
    for (let i = 0; i < 5; i++) await target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU', 'WH1', i]] }], []);
    expect(await readdir(path.dirname(file))).toEqual(['inventory.xlsx']);
  });

  it('sets and removes notes', async () => {
    await target.write(
      [{ tab: 'Stock', startRow: 2, rows: [['SHEET-Q', 'WH1', 12]] }],
      [{ tab: 'Stock', row: 2, column: 2, text: 'Rejected: version conflict (sheet had 3, stock is at 5)' }],
    );
    expect(sheetOf(await openFresh(), 'Stock').getCell('C2').note).toBe('Rejected: version conflict (sheet had 3, stock is at 5)');

    await target.write([], [{ tab: 'Stock', row: 2, column: 2, text: null }]);
    const ws = sheetOf(await openFresh(), 'Stock');
    expect(ws.getCell('C2').note).toBeUndefined();
    expect(ws.getCell('C2').value).toBe(12);
  });

  it('reads what a person typed: rich text as plain text, formulas as their result or "=FORMULA", dates as ISO', async () => {
    await editAsPerson((workbook) => {
      const ws = sheetOf(workbook, 'Stock');
      ws.getCell('A2').value = { richText: [{ text: 'SHEET-' }, { text: 'Q', font: { bold: true } }] };
      ws.getCell('C2').value = { formula: 'D2*2', result: 10 };
      ws.getCell('C3').value = { formula: 'SUM(C2:D2)' };
      ws.getCell('C4').value = { formula: '1/0', result: { error: '#DIV/0!' } };
      ws.getCell('A3').value = { text: 'SHEET-R', hyperlink: 'https://example.com/SHEET-R' };
      ws.getCell('D3').value = new Date(Date.UTC(2025, 0, 31));
      ws.getCell('D4').value = new Date(Date.UTC(2025, 0, 31, 13, 30));
    });

    const rows = (await target.read(['Stock'])).get('Stock');
    expect(rows?.slice(1)).toEqual([
      ['SHEET-Q', null, 10, null, null],
      ['SHEET-R', null, '=SUM(C2:D2)', '2025-01-31', null],
      [null, null, '#DIV/0!', '2025-01-31T13:30:00.000Z', null],
    ]);
  });

  it("overwrites the first cell of a person's filled-down formula without breaking the other cells", async () => {
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A', 'WH1', 1, 2], ['B', 'WH1', 3, 4], ['C', 'WH1', 5, 6]] }], []);
    await editAsPerson((workbook) => {
      // what Excel saves after a fill-down: the formula once, in C2, and clones of it below
      const ws = sheetOf(workbook, 'Stock');
      ws.getCell('C2').value = { formula: 'D2*2', result: 4, shareType: 'shared', ref: 'C2:C4' } as ExcelJS.CellFormulaValue;
      ws.getCell('C3').value = { sharedFormula: 'C2', result: 8 };
      ws.getCell('C4').value = { sharedFormula: 'C2', result: 12 };
    });

    await target.write([{ tab: 'Stock', startRow: 2, rows: [[null, null, 1]] }], []);

    expect((await target.read(['Stock'])).get('Stock')?.slice(1).map((row) => row[2])).toEqual([1, 8, 12]);
    expect(sheetOf(await openFresh(), 'Stock').getCell('C4').formula).toBe('D4*2');
  });

  it('refuses to write while LibreOffice has the workbook open, and retries are told to wait', async () => {
    const lock = path.join(path.dirname(file), '.~lock.inventory.xlsx#');
    await writeFile(lock, ',person,host,01.01.2025 10:00,person;');
    const before = await readFile(file);

    const failure = await target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU']] }], []).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(WorkbookBusy);
    expect(failure).toMatchObject({ status: 503, retryAfterMs: 2000, retryable: true });
    expect((await readFile(file)).equals(before)).toBe(true);

    await unlink(lock);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU']] }], []);
    expect((await target.read(['Stock'])).get('Stock')?.[1]?.[0]).toBe('SKU');
  });
});

describe('watch', () => {
  beforeEach(() => target.ensureLayout([STOCK]));

  it('reports a save by a person', async () => {
    let changes = 0;
    target.watch?.(() => changes++);

    await editAsPerson((workbook) => {
      sheetOf(workbook, 'Stock').getCell('C2').value = 9;
    });
    await waitFor(() => changes > 0);
  });

  it('reports a save that replaces the file, the way Excel and LibreOffice save', async () => {
    let changes = 0;
    target.watch?.(() => changes++);

    const workbook = await openFresh();
    sheetOf(workbook, 'Stock').getCell('C2').value = 9;
    const temp = path.join(path.dirname(file), 'saving.tmp');
    await workbook.xlsx.writeFile(temp);
    await rename(temp, file);
    await waitFor(() => changes > 0);
  });

  it("does not report the adapter's own writes", async () => {
    let changes = 0;
    target.watch?.(() => changes++);

    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SHEET-Q', 'WH1', 12]] }], []);
    // a negative needs an observation window: the debounce (200 ms) plus several 100 ms polls
    const until = Date.now() + 800;
    await waitFor(() => changes > 0 || Date.now() > until);
    expect(changes).toBe(0);

    // the watcher is alive: the next save by a person is still seen
    await editAsPerson((workbook) => {
      sheetOf(workbook, 'Stock').getCell('C2').value = 9;
    });
    await waitFor(() => changes > 0);
    expect(changes).toBe(1);
  });

  it('stops reporting once stopped', async () => {
    let changes = 0;
    const stop = target.watch?.(() => changes++);
    stop?.();

    await editAsPerson((workbook) => {
      sheetOf(workbook, 'Stock').getCell('C2').value = 9;
    });
    const until = Date.now() + 600;
    await waitFor(() => changes > 0 || Date.now() > until);
    expect(changes).toBe(0);
  });
});
