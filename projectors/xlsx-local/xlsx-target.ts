/**
 * The local workbook mirror (`.data/inventory.xlsx` by default): a SheetTarget over one .xlsx file on
 * disk, read and written whole with exceljs. The file is loaded afresh for every call, because the person
 * may have saved it in Excel or LibreOffice since.
 *
 * Invariants: a save is atomic (temp file in the same directory, fsync, rename), so a reader never sees a
 * half-written workbook. The adapter never saves over a file it could not parse, over a file someone saved
 * after the adapter loaded it, or while an editor's lock file sits next to it; those fail with a
 * ProviderError the engine retries or reports. A tab or file a person deleted is recreated from its layout
 * by the next write. watch() reports saves by others, never the adapter's own.
 *
 * exceljs rewrites the whole file on every save and drops what it does not model (charts, pivot tables,
 * images, threaded comments); the workbook belongs to the mirror, a person only edits values in it.
 */
import { randomBytes } from 'node:crypto';
import { statSync, watch as watchFs, type FSWatcher, type Stats } from 'node:fs';
import { access, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import ExcelJS from 'exceljs';
import pino, { type Logger } from 'pino';
import {
  ProviderError,
  type CellNote,
  type CellValue,
  type RangeWrite,
  type SheetTarget,
  type TabSpec,
} from '../sheet-sync/sheet-target.ts';

const BUSY_RETRY_MS = 2000;
const WATCH_DEBOUNCE_MS = 200;
// a file that fails to parse and was modified this recently is probably still being saved
const SAVE_IN_PROGRESS_MS = 2000;

/**
 * The workbook is open or being saved by someone else. Status 503 with a 2 s Retry-After rather than 423
 * (Locked): the engine retries only 5xx/429/408, and this clears by itself once the person closes the file.
 */
export class WorkbookBusy extends ProviderError {
  readonly code = 'workbook_busy';
  constructor(message: string, cause?: unknown) {
    super(message, 503, BUSY_RETRY_MS);
    this.name = 'WorkbookBusy';
    this.cause = cause;
  }
}

/** The file at the path is not a workbook exceljs can parse. It is left untouched; not retried. */
export class WorkbookUnreadable extends ProviderError {
  readonly code = 'workbook_unreadable';
  constructor(file: string, cause: unknown) {
    super(
      `${file} is not a readable .xlsx workbook (${errorMessage(cause)}); the mirror will not overwrite it. ` +
        'Move it aside (the mirror then creates a fresh one) or restore a good copy.',
      422,
    );
    this.name = 'WorkbookUnreadable';
    this.cause = cause;
  }
}

/** write() to a tab this adapter was never given a layout for (ensureLayout was not called for it). */
export class LayoutMissing extends ProviderError {
  readonly code = 'layout_missing';
  constructor(message: string) {
    super(`${message}, and ensureLayout was never called for it: a bug in the caller`, 409);
    this.name = 'LayoutMissing';
  }
}

export interface XlsxTargetProps {
  path: string;
  log?: Logger;
  /** how often watch() polls the file's mtime and size, as a fallback to fs.watch (default 1000) */
  watchIntervalMs?: number;
}

/** Creates the SheetTarget for a workbook file on local disk. */
export function createXlsxTarget(props: XlsxTargetProps): SheetTarget {
  const file = path.resolve(props.path);
  const dir = path.dirname(file);
  const base = path.basename(file);
  const log = (props.log ?? pino({ level: 'silent' })).child({ component: 'xlsx-local', path: file });
  const watchIntervalMs = props.watchIntervalMs ?? 1000;
  const stoppers = new Set<() => void>();
  // the layouts ensureLayout was given, so write() can recreate a tab or file a person deleted
  const layouts = new Map<string, TabSpec>();

  // load-modify-save calls run one at a time, or two writes would each save over the other's changes
  let queue: Promise<unknown> = Promise.resolve();
  function exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  }

  // what the file looked like after the adapter's last save, so watch() can tell it from a person's
  let ownSave: string | undefined;
  let saving = false;

  async function load(): Promise<{ workbook: ExcelJS.Workbook; signature: string } | undefined> {
    let before: Stats;
    let buffer: Buffer;
    try {
      before = await stat(file);
      buffer = await readFile(file);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw fsError(err, 'read');
    }
    const workbook = new ExcelJS.Workbook();
    try {
      // exceljs types its own Buffer as an ArrayBuffer; at run time it takes a Node Buffer
      await workbook.xlsx.load(buffer as unknown as ExcelJS.Buffer);
    } catch (err) {
      const after = await stat(file).catch(() => undefined);
      if (!after || signatureOf(after) !== signatureOf(before) || Date.now() - after.mtimeMs < SAVE_IN_PROGRESS_MS) {
        throw new WorkbookBusy(`${file} changed while it was read (is it being saved?)`, err);
      }
      throw new WorkbookUnreadable(file, err);
    }
    return { workbook, signature: signatureOf(before) };
  }

  async function assertNotLocked(): Promise<void> {
    // LibreOffice keeps `.~lock.<name>#` and Excel `~$<name>` next to a workbook it has open. Replacing the
    // file under an open editor would be undone by the person's next save, so wait until they close it.
    for (const lock of [`.~lock.${base}#`, `~$${base}`]) {
      const lockPath = path.join(dir, lock);
      const exists = await access(lockPath).then(() => true, () => false);
      if (exists) {
        throw new WorkbookBusy(
          `${file} is open in a spreadsheet program (${lockPath} exists); changes are written once it is ` +
            'closed. If no one has it open, the lock file is stale: delete it.',
        );
      }
    }
  }

  async function save(workbook: ExcelJS.Workbook, loadedSignature: string | undefined): Promise<void> {
    await assertNotLocked();
    const buffer = (await workbook.xlsx.writeBuffer()) as unknown as Uint8Array; // a Node Buffer at run time
    const current = await stat(file).catch(() => undefined);
    if (current && loadedSignature !== undefined && signatureOf(current) !== loadedSignature) {
      throw new WorkbookBusy(`${file} was saved by someone else while the mirror was updating it`);
    }
    const temp = path.join(dir, `.${base}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    saving = true;
    try {
      const handle = await open(temp, 'wx', current ? current.mode & 0o777 : 0o644); // keep the file's permissions
      try {
        await handle.writeFile(buffer);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
      ownSave = signatureOf(await stat(file));
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw fsError(err, 'write');
    } finally {
      saving = false;
    }
  }

  function watch(onChange: () => void): () => void {
    let seen = currentSignatureSync(file);
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;

    async function check(): Promise<void> {
      timer = undefined;
      if (stopped) return;
      if (saving) return schedule();
      const current = await stat(file).then(signatureOf, (err: unknown) => {
        if (errnoCode(err) === 'ENOENT') return 'missing';
        throw err;
      });
      // a save that began while stat ran: wait for it, or its result could look like someone else's
      if (saving) return schedule();
      if (stopped || current === seen) return;
      seen = current;
      if (current === ownSave) return;
      log.debug('workbook saved by someone else');
      onChange();
    }
    function schedule(): void {
      clearTimeout(timer);
      timer = setTimeout(() => {
        check().catch((err: unknown) => log.warn({ err }, 'checking the workbook for changes failed'));
      }, WATCH_DEBOUNCE_MS);
    }

    // fs.watch on the directory sees saves that replace the file (Excel, LibreOffice, this adapter); the
    // poll covers file systems where it is unreliable (network shares, some containers)
    let watcher: FSWatcher | undefined;
    try {
      watcher = watchFs(dir, (_event, name) => {
        if (name === null || name === base) schedule();
      });
      watcher.on('error', (err) => {
        log.warn({ err }, 'fs.watch failed; polling only');
        watcher?.close();
      });
    } catch (err) {
      log.debug({ err }, 'fs.watch unavailable; polling only');
    }
    const poll = setInterval(() => {
      if (!timer) schedule();
    }, watchIntervalMs);

    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
      stoppers.delete(stop);
    };
    stoppers.add(stop);
    return stop;
  }

  return {
    kind: 'xlsx-local',
    readBeforeWrite: true,

    ensureLayout(tabs: TabSpec[]) {
      return exclusive(async () => {
        for (const tab of tabs) layouts.set(tab.title, tab);
        if (tabs.length === 0) return;
        await mkdir(dir, { recursive: true });
        const loaded = await load();
        const workbook = loaded?.workbook ?? newWorkbook();
        let changed = !loaded;
        for (const tab of tabs) changed = (await applyLayout(workbook, tab)) || changed;
        if (!changed) return;
        await save(workbook, loaded?.signature);
        log.info({ tabs: tabs.map((t) => t.title) }, loaded ? 'workbook layout updated' : 'workbook created');
      });
    },

    async read(tabs: string[]) {
      const grids = new Map<string, CellValue[][]>();
      const loaded = await load();
      if (!loaded) return grids;
      for (const title of tabs) {
        const sheet = loaded.workbook.getWorksheet(title);
        if (sheet) grids.set(title, gridOf(sheet));
      }
      return grids;
    },

    write(ranges: RangeWrite[], notes: CellNote[]) {
      return exclusive(async () => {
        if (ranges.length === 0 && notes.length === 0) return;
        const loaded = await load();
        const workbook = loaded?.workbook ?? newWorkbook();
        for (const title of new Set([...ranges.map((r) => r.tab), ...notes.map((n) => n.tab)])) {
          if (workbook.getWorksheet(title)) continue;
          const layout = layouts.get(title);
          if (!layout) throw new LayoutMissing(`tab "${title}" is missing from ${file}`);
          log.warn({ tab: title }, loaded ? 'tab was deleted from the workbook; recreating it' : 'workbook was deleted; recreating it');
          await applyLayout(workbook, layout);
        }
        if (!loaded) await mkdir(dir, { recursive: true });
        const sheet = (title: string) => workbook.getWorksheet(title)!;
        for (const range of ranges) {
          if (!Number.isInteger(range.startRow) || range.startRow < 1) {
            throw new ProviderError(`write to "${range.tab}" starts at row ${range.startRow}; rows are 1-based`, 400);
          }
          const ws = sheet(range.tab);
          range.rows.forEach((values, offset) => {
            const row = ws.getRow(range.startRow + offset);
            values.forEach((value, column) => {
              if (value === null) return;
              const cell = row.getCell(column + 1);
              if (cell.type === ExcelJS.ValueType.Formula) detachSharedClones(ws, cell);
              cell.value = rawValue(value, range.tab);
            });
          });
        }
        for (const note of notes) {
          const cell = sheet(note.tab).getCell(note.row, note.column + 1);
          if (note.text !== null) cell.note = note.text;
          else removeNote(cell);
        }
        await save(workbook, loaded?.signature);
      });
    },

    watch,

    async close() {
      for (const stop of [...stoppers]) stop();
      await queue;
    },
  };
}

/**
 * Turns the clones of a shared formula into standalone formulas before its first cell is overwritten:
 * Excel stores a filled-down formula once, and exceljs cannot save clones whose first cell is gone.
 */
function detachSharedClones(ws: ExcelJS.Worksheet, master: ExcelJS.Cell): void {
  ws.eachRow((row) =>
    row.eachCell((cell) => {
      if (cell.type !== ExcelJS.ValueType.Formula) return;
      const value = cell.value as ExcelJS.CellSharedFormulaValue;
      if (value.sharedFormula === master.address) cell.value = { formula: cell.formula, result: value.result };
    }),
  );
}

function removeNote(cell: ExcelJS.Cell): void {
  // exceljs 4.4 has no way to remove a note (exceljs#1153; `note = {}` leaves an empty one that Excel
  // shows). A note lives on the cell and, for a cell loaded from a file, on its value's model too.
  delete (cell as unknown as { _comment?: unknown })._comment;
  delete (cell.model as { comment?: unknown }).comment;
}

function newWorkbook(): ExcelJS.Workbook {
  const workbook = new ExcelJS.Workbook();
  workbook.creator = 'stockwire';
  return workbook;
}

/** Brings one tab to its spec (adding it if missing); returns whether anything changed. */
async function applyLayout(workbook: ExcelJS.Workbook, tab: TabSpec): Promise<boolean> {
  const existing = workbook.getWorksheet(tab.title);
  const ws = existing ?? workbook.addWorksheet(tab.title, { views: [{ state: 'frozen', ySplit: 1 }] });
  let changed = !existing;
  const editable = new Set(tab.editableColumns);
  tab.header.forEach((title, index) => {
    const column = ws.getColumn(index + 1);
    if (!existing) column.width = Math.max(10, title.length + 2);
    const hidden = index >= tab.firstHiddenColumn;
    if (column.hidden !== hidden) {
      column.hidden = hidden;
      changed = true;
    }
    // the column style, not per-cell styles: rows the mirror adds later, and cells a person types into,
    // inherit it. Setting it also restyles the column's existing cells, header included (re-locked below).
    const unlocked = editable.has(index);
    if ((column.protection?.locked === false) !== unlocked) {
      column.protection = { locked: !unlocked };
      changed = true;
    }
    const cell = ws.getCell(1, index + 1);
    if (cell.value !== title) {
      cell.value = title;
      changed = true;
    }
    if (cell.protection?.locked === false || cell.font?.bold !== true) {
      cell.protection = { locked: true };
      cell.font = { bold: true };
      changed = true;
    }
  });
  if (!isProtected(ws)) {
    // No password: protection guards against slips (typing over a sku or the hidden version), it is not
    // security; anyone can unprotect the sheet, and ensureLayout protects it again on the next start.
    await ws.protect('', {
      selectLockedCells: true,
      selectUnlockedCells: true,
      formatColumns: true,
      formatRows: true,
      autoFilter: true,
      // sorting or inserting rows would move values away from the rows the engine wrote them to
      sort: false,
      insertRows: false,
      deleteRows: false,
    });
    changed = true;
  }
  return changed;
}

function isProtected(ws: ExcelJS.Worksheet): boolean {
  // set by protect() and read from the file, but missing from exceljs's typings
  return Boolean((ws as unknown as { sheetProtection?: unknown }).sheetProtection);
}

/** The tab's values from row 1 to its last non-empty row, each row padded with nulls to the widest. */
function gridOf(ws: ExcelJS.Worksheet): CellValue[][] {
  const rows: CellValue[][] = [];
  let width = 0;
  let lastRow = 0;
  for (let rowNumber = 1; rowNumber <= ws.rowCount; rowNumber++) {
    const values: CellValue[] = [];
    ws.findRow(rowNumber)?.eachCell({ includeEmpty: false }, (cell, column) => {
      const value = cellValue(cell);
      if (value !== null) values[column - 1] = value;
    });
    if (values.length > 0) {
      width = Math.max(width, values.length);
      lastRow = rowNumber;
    }
    rows.push(values);
  }
  return rows.slice(0, lastRow).map((values) => Array.from({ length: width }, (_, i) => values[i] ?? null));
}

/** What a person sees in the cell, as a CellValue. */
export function cellValue(cell: ExcelJS.Cell): CellValue {
  if (cell.type === ExcelJS.ValueType.Merge) return null; // the value belongs to the merge's first cell
  if (cell.type === ExcelJS.ValueType.Formula) {
    const { result } = cell.value as ExcelJS.CellFormulaValue | ExcelJS.CellSharedFormulaValue;
    // no cached result (written by a program that does not calculate): the text, which the engine rejects
    return result === undefined ? `=${cell.formula}` : plainValue(result);
  }
  return plainValue(cell.value);
}

function plainValue(value: ExcelJS.CellValue): CellValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof Date) {
    const iso = value.toISOString();
    return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
  }
  if ('richText' in value) return value.richText.map((run) => run.text).join('');
  if ('hyperlink' in value) return plainValue(value.text);
  if ('error' in value) return value.error;
  if ('formula' in value || 'sharedFormula' in value) return value.result === undefined ? null : plainValue(value.result);
  return null;
}

function rawValue(value: string | number | boolean, tab: string): string | number | boolean {
  // exceljs stores a JS string as a string cell whatever it looks like ("=1+1" included); only an object
  // with `formula` makes a formula, and none is ever built here
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ProviderError(`write to "${tab}" has the number ${value}, which a workbook cannot hold`, 400);
  }
  return value;
}

function signatureOf(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}`;
}

function currentSignatureSync(file: string): string {
  try {
    return signatureOf(statSync(file));
  } catch {
    return 'missing';
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function fsError(err: unknown, action: 'read' | 'write'): Error {
  if (err instanceof ProviderError) return err;
  const code = errnoCode(err);
  // Windows refuses to replace or read a file another program holds open: EBUSY or EPERM (EACCES at times)
  if (code === 'EBUSY' || code === 'EPERM' || (code === 'EACCES' && process.platform === 'win32')) {
    return new WorkbookBusy(`cannot ${action} the workbook: it is in use by another program (${code})`, err);
  }
  const failure = new ProviderError(`cannot ${action} the workbook: ${errorMessage(err)}`, 500);
  failure.cause = err;
  return failure;
}
