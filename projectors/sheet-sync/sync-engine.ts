/**
 * The sheet-sync engine: one implementation of coalescing, diffing and conflict rules for every mirror.
 *
 * Outbound: apply() folds a batch of change events into the model and marks the sheet rows they touch;
 * a flush cycle writes every marked row in one provider call (at most one per flush interval, within
 * the provider's write quota), only the cells that differ from what the sheet holds. apply() returns
 * when its rows are in the sheet, so the projector acknowledges a change only once it is visible there.
 *
 * Inbound: a read (on the poll interval, when the adapter reports a save, and before every write where
 * reads are cheap) compares each editable cell with its hidden synced copy. A difference is a person's
 * edit: it becomes an API call as the sheet-sync role (a count with the row's version as
 * expected_version, or a reorder point). Refused edits (invalid value, version conflict) are reverted to
 * the database value with a note on the cell saying why; edits the API could not take are left and
 * tried again. The engine's own writes update the synced copies, so they never come back as edits.
 *
 * All reads and writes of one engine run one at a time (a cycle), so a read never sees half a write.
 */
import type { Logger } from 'pino';
import type { ChangeEvent } from '../../cdc/envelope.ts';
import type { Projection } from '../runtime/projector-runtime.ts';
import { cellRef, EDITABLE, isLocationTab, sameCell, sheetTimestamp, STOCK, workbookTabs, type EditableField } from './layout.ts';
import { ProviderError, type CellNote, type CellValue, type RangeWrite, type SheetTarget } from './sheet-target.ts';
import type { StockwireClient } from './stockwire-client.ts';
import type { TokenBucket } from './token-bucket.ts';
import { WorkbookModel, type RowRef } from './workbook-model.ts';

export interface SheetSyncCounters {
  writeCalls: number;
  readCalls: number;
  rowsWritten: number;
  providerRetries: number;
  editsApplied: number;
  editsReverted: number;
}

export interface SyncEngineProps {
  target: SheetTarget;
  model: WorkbookModel;
  api: StockwireClient;
  log: Logger;
  /** minimum time between two writes: changes within it coalesce into one call */
  flushIntervalMs: number;
  /** how often the sheet is read for edits */
  pollIntervalMs: number;
  writeQuota?: TokenBucket | undefined;
  readQuota?: TokenBucket | undefined;
  /** rows per provider write call; larger flushes go in several calls */
  maxRowsPerWrite?: number;
  /** called after every provider call, for metrics */
  onCall?: (kind: 'read' | 'write', ok: boolean) => void;
  /** called for every inbound edit, for metrics */
  onEdit?: (outcome: 'applied' | 'reverted' | 'deferred') => void;
  now?: () => Date;
}

interface TabRows {
  rows: Map<string, number>;
  next: number;
}

interface PendingRow {
  ref: RowRef;
  /** write every cell, including editable ones (a revert, a resync) */
  forced: boolean;
}

/** Refused-edit reasons, as the person reads them in the cell note. */
function describeRefusal(code: string, message: string): string {
  if (code === 'version_conflict') return 'the row changed in stockwire after the sheet showed it, so your count may be out of date';
  return message;
}

export class SheetSyncEngine implements Projection {
  readonly counters: SheetSyncCounters = { writeCalls: 0, readCalls: 0, rowsWritten: 0, providerRetries: 0, editsApplied: 0, editsReverted: 0 };
  private readonly tabRows = new Map<string, TabRows>();
  /** what each row of the sheet holds, as last read or written, by `tab\u0000key` */
  private readonly sheet = new Map<string, CellValue[]>();
  private readonly pending = new Map<string, PendingRow>();
  private notes: CellNote[] = [];
  private readonly notedCells = new Set<string>();
  private knownTabs = new Set<string>();
  private readDue = false;
  private lastWriteAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private rerun = false;
  /** stage() callers, each waiting for the rows marked up to `upTo` to be written */
  private waiters: { upTo: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  /** sequence number of the latest mark */
  private markSeq = 0;
  /** editable cells holding an edit the API could not take yet: writes leave them alone */
  private readonly heldCells = new Set<string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private stopped = false;
  private readonly now: () => Date;

  constructor(private readonly props: SyncEngineProps) {
    this.now = props.now ?? (() => new Date());
  }

  /** Lays out the workbook, takes in edits made while the sync was down, and brings every row up to date. */
  async start(): Promise<void> {
    await this.exclusive(async () => {
      await this.ensureTabs();
      await this.readSheet({ reconcile: true });
      await this.writePending();
    });
    this.pollTimer = setInterval(() => this.requestRead(), this.props.pollIntervalMs);
    this.unwatch = this.props.target.watch?.(() => this.requestRead());
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.timer);
    this.unwatch?.();
    for (const w of this.waiters.splice(0)) w.reject(new Error('sheet sync stopped'));
    while (this.running) await new Promise((r) => setTimeout(r, 20));
  }

  /** Reads the sheet for edits as soon as the current cycle allows. */
  requestRead(): void {
    this.readDue = true;
    this.schedule();
  }

  apply(events: ChangeEvent[]): Promise<void> {
    return this.stage(events);
  }

  /**
   * Takes a batch in at once and returns a promise that resolves when everything taken in so far is in
   * the sheet (the runtime stages the next batch meanwhile). Provider outages are waited out — the
   * runtime keeps the messages' ack deadline alive — so nothing is acknowledged early.
   */
  stage(events: ChangeEvent[]): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('sheet sync stopped'));
    const touched = this.props.model.apply(events);
    for (const ref of touched.rows) this.mark(ref, touched.forced);
    if (touched.forced) {
      // a resync rebuilds the sheet: re-create tabs a person deleted and re-learn where rows are
      this.knownTabs.clear();
      this.readDue = true;
    }
    if (!this.wantsWrite()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ upTo: this.markSeq, resolve, reject });
      this.schedule();
    });
  }

  private mark(ref: RowRef, forced: boolean) {
    this.markSeq += 1;
    const id = rowId(ref);
    const current = this.pending.get(id);
    this.pending.set(id, { ref, forced: forced || Boolean(current?.forced) });
  }

  // ---- cycles -------------------------------------------------------------------------------------

  private wantsWrite(): boolean {
    return this.pending.size > 0 || this.notes.length > 0;
  }

  private writeWaitMs(): number {
    return Math.max(0, this.lastWriteAt + this.props.flushIntervalMs - Date.now());
  }

  private schedule() {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    if (this.timer || (!this.readDue && !this.wantsWrite())) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.cycle();
    }, this.readDue ? 0 : this.writeWaitMs());
  }

  private async cycle() {
    if (this.running || this.stopped) return;
    this.running = true;
    this.rerun = false;
    try {
      const writeNow = this.wantsWrite() && this.writeWaitMs() === 0;
      if (this.readDue || (this.props.target.readBeforeWrite && writeNow)) {
        this.readDue = false;
        await this.readSheet({ reconcile: false });
      }
      if (this.wantsWrite()) {
        if (this.writeWaitMs() === 0) await this.writePending();
        else this.rerun = true;
      }
      if (!this.wantsWrite()) this.settleWaiters(this.markSeq);
    } catch (err) {
      this.props.log.error({ err: { message: (err as Error).message } }, 'sheet sync cycle failed');
      for (const w of this.waiters.splice(0)) w.reject(err as Error);
    } finally {
      this.running = false;
      if (this.rerun || this.wantsWrite()) this.schedule();
    }
  }

  /** Resolves the waiters whose rows are all written (marked at or before `written`). */
  private settleWaiters(written: number) {
    const done = this.waiters.filter((w) => w.upTo <= written);
    this.waiters = this.waiters.filter((w) => w.upTo > written);
    for (const w of done) w.resolve();
  }

  private async exclusive(fn: () => Promise<void>) {
    while (this.running) await new Promise((r) => setTimeout(r, 10));
    this.running = true;
    try {
      await fn();
    } finally {
      this.running = false;
    }
  }

  // ---- provider calls with retry --------------------------------------------------------------------

  /** Runs a provider call until it succeeds: 429 / 5xx / network errors wait (Retry-After or backoff) and retry. */
  private async withRetry<T>(kind: 'read' | 'write', call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await (kind === 'write' ? this.props.writeQuota : this.props.readQuota)?.take();
      try {
        const result = await call();
        this.props.onCall?.(kind, true);
        return result;
      } catch (err) {
        this.props.onCall?.(kind, false);
        const retryable = err instanceof ProviderError ? err.retryable : true;
        if (!retryable || this.stopped) throw err;
        const backoff = Math.min(30_000, 250 * 2 ** Math.min(attempt - 1, 7));
        const delay = err instanceof ProviderError && err.retryAfterMs !== undefined ? err.retryAfterMs : backoff;
        this.counters.providerRetries += 1;
        this.props.log.warn({ err: { message: (err as Error).message }, status: (err as ProviderError).status, attempt, retryInMs: delay }, `sheet ${kind} failed; retrying`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async ensureTabs() {
    const tabs = workbookTabs(this.props.model.locations);
    if (tabs.every((t) => this.knownTabs.has(t.title))) return;
    await this.withRetry('write', () => this.props.target.ensureLayout(tabs));
    this.knownTabs = new Set(tabs.map((t) => t.title));
  }

  // ---- reading: row positions, edits, reconcile -----------------------------------------------------

  private async readSheet(options: { reconcile: boolean }) {
    const titles = workbookTabs(this.props.model.locations).map((t) => t.title);
    const grid = await this.withRetry('read', () => this.props.target.read(titles));
    this.counters.readCalls += 1;
    const edits: { ref: RowRef; row: number; cells: CellValue[] }[] = [];
    this.heldCells.clear();
    for (const title of titles) {
      const rows = grid.get(title) ?? [];
      const index: TabRows = { rows: new Map(), next: Math.max(2, rows.length + 1) };
      rows.forEach((cells, i) => {
        if (i === 0) return;
        const key = WorkbookModel.keyOfGridRow(title, cells);
        if (key === undefined || index.rows.has(key)) return;
        index.rows.set(key, i + 1);
        const ref = { tab: title, key };
        if (isLocationTab(title) && EDITABLE.some((e) => !sameCell(cells[e.column], cells[e.synced]))) edits.push({ ref, row: i + 1, cells });
        this.sheet.set(rowId(ref), cells);
      });
      this.tabRows.set(title, index);
    }
    for (const edit of edits) await this.takeEdit(edit.ref, edit.row, edit.cells);
    if (options.reconcile) {
      // rows the sheet lacks or shows differently (missed while down, or a new sheet) are written now
      for (const ref of this.props.model.allRows()) {
        const shown = this.sheet.get(rowId(ref));
        const wanted = this.props.model.render(ref);
        if (!shown || !wanted || wanted.some((v, i) => !sameCell(v, shown[i]))) this.mark(ref, false);
      }
    }
  }

  /** One row with at least one edited cell: each edit becomes an API call, or a revert with a note. */
  private async takeEdit(ref: RowRef, row: number, cells: CellValue[]) {
    const stock = this.props.model.stockRow(ref.key, ref.tab);
    const product = this.props.model.product(ref.key);
    if (!stock || !product) return;
    for (const editable of EDITABLE) {
      const value = cells[editable.column] ?? null;
      if (sameCell(value, cells[editable.synced])) continue;
      const cell = { tab: ref.tab, row, column: editable.column };
      const quantity = parseQuantity(value);
      if (quantity === undefined) {
        this.revert(ref, cell, `"${String(value ?? '')}" is not a quantity: ${editable.label} must be a whole number of 0 or more`);
        continue;
      }
      if (editable.field === 'on_hand' && product.lot_tracked) {
        this.revert(ref, cell, `${ref.key} is counted per lot: book a count per lot (see the Lots tab) instead of the total`);
        continue;
      }
      const answer = await this.send(editable.field, ref, quantity, Number(cells[STOCK.version]), cellRef(editable.column, row));
      if (answer.kind === 'unavailable') {
        this.heldCells.add(noteId(cell));
        this.props.onEdit?.('deferred');
        this.props.log.warn({ tab: ref.tab, sku: ref.key, field: editable.field, reason: answer.message }, 'sheet edit not taken yet; will retry on the next read');
      } else if (answer.kind === 'refused') {
        this.revert(ref, cell, describeRefusal(answer.code, answer.message));
      } else {
        this.counters.editsApplied += 1;
        this.props.onEdit?.('applied');
        this.props.log.info({ tab: ref.tab, sku: ref.key, field: editable.field, value: quantity }, 'sheet edit applied');
        const shown = this.sheet.get(rowId(ref));
        if (shown) shown[editable.column] = quantity;
        if (this.notedCells.delete(noteId(cell))) this.notes.push({ ...cell, text: null });
        this.mark(ref, false);
      }
    }
  }

  private async send(field: EditableField, ref: RowRef, quantity: number, version: number, a1: string) {
    if (field === 'on_hand') {
      const answer = await this.props.api.countStock({
        sku: ref.key, location: ref.tab, counted: quantity, expectedVersion: version, note: `sheet edit ${this.props.target.kind} ${ref.tab}!${a1}`,
      });
      if (answer.kind === 'accepted') this.props.model.applyStockAnswer(answer.body.stock).forEach((r) => this.mark(r, false));
      return answer;
    }
    const answer = await this.props.api.setReorderPoint({ sku: ref.key, reorderPoint: quantity, expectedVersion: this.props.model.product(ref.key)?.version });
    if (answer.kind === 'accepted') this.props.model.applyProductAnswer(answer.body).forEach((r) => this.mark(r, false));
    return answer;
  }

  private revert(ref: RowRef, cell: { tab: string; row: number; column: number }, reason: string) {
    this.counters.editsReverted += 1;
    this.props.onEdit?.('reverted');
    this.props.log.info({ tab: ref.tab, sku: ref.key, cell: cellRef(cell.column, cell.row), reason }, 'sheet edit reverted');
    this.mark(ref, true);
    this.notedCells.add(noteId(cell));
    this.notes.push({ ...cell, text: `stockwire did not apply this edit (${sheetTimestamp(this.now())}): ${reason}. The cell shows the stockwire value again.` });
  }

  // ---- writing ----------------------------------------------------------------------------------------

  private async writePending() {
    if (this.pending.size === 0 && this.notes.length === 0) return;
    await this.ensureTabs();
    const batch = [...this.pending.values()];
    const covered = this.markSeq;
    this.pending.clear();
    const notes = this.notes;
    this.notes = [];
    const rows: { tab: string; row: number; cells: CellValue[]; ref: RowRef }[] = [];
    for (const { ref, forced } of batch) {
      const wanted = this.props.model.render(ref);
      const shown = this.sheet.get(rowId(ref));
      if (!wanted && !shown) continue;
      const full = wanted ?? shown!.map(() => '');
      const row = this.rowNumber(ref);
      const held = (column: number) => !forced && this.heldCells.has(noteId({ tab: ref.tab, row, column }));
      const cells = full.map((v, i) => ((!forced && shown && sameCell(shown[i], v)) || held(i) ? null : v));
      if (cells.every((v) => v === null)) continue;
      rows.push({ tab: ref.tab, row, cells, ref });
    }
    rows.sort((a, b) => (a.tab === b.tab ? a.row - b.row : a.tab < b.tab ? -1 : 1));
    const chunkSize = this.props.maxRowsPerWrite ?? 5000;
    if (rows.length === 0 && notes.length === 0) {
      this.settleWaiters(covered);
      return;
    }
    try {
      for (let i = 0; i < Math.max(rows.length, notes.length ? 1 : 0); i += chunkSize) {
        const chunk = rows.slice(i, i + chunkSize);
        const chunkNotes = i === 0 ? notes : [];
        await this.withRetry('write', () => this.props.target.write(toRanges(chunk), chunkNotes));
        this.counters.writeCalls += 1;
        this.counters.rowsWritten += chunk.length;
        for (const r of chunk) {
          const shown = this.sheet.get(rowId(r.ref)) ?? [];
          r.cells.forEach((v, c) => {
            if (v !== null) shown[c] = v;
          });
          this.sheet.set(rowId(r.ref), shown);
        }
      }
      this.lastWriteAt = Date.now();
      this.settleWaiters(covered);
    } catch (err) {
      // nothing is dropped: the rows stay marked for the next cycle
      for (const p of batch) this.mark(p.ref, p.forced);
      this.notes.unshift(...notes);
      throw err;
    }
  }

  private rowNumber(ref: RowRef): number {
    let index = this.tabRows.get(ref.tab);
    if (!index) this.tabRows.set(ref.tab, (index = { rows: new Map(), next: 2 }));
    let row = index.rows.get(ref.key);
    if (row === undefined) {
      row = index.next++;
      index.rows.set(ref.key, row);
    }
    return row;
  }
}

function rowId(ref: RowRef): string {
  return `${ref.tab}\u0000${ref.key}`;
}

function noteId(cell: { tab: string; row: number; column: number }): string {
  return `${cell.tab}\u0000${cell.row}\u0000${cell.column}`;
}

/** A whole number of 0 or more, as a number or digits in text; anything else is not a quantity. */
export function parseQuantity(value: CellValue): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d{1,7}\s*$/.test(value) ? Number(value) : Number.NaN;
  return Number.isInteger(n) && n >= 0 && n <= 1_000_000 ? n : undefined;
}

/** Consecutive rows of a tab become one range. */
function toRanges(rows: { tab: string; row: number; cells: CellValue[] }[]): RangeWrite[] {
  const ranges: RangeWrite[] = [];
  for (const r of rows) {
    const last = ranges[ranges.length - 1];
    if (last && last.tab === r.tab && last.startRow + last.rows.length === r.row) last.rows.push(r.cells);
    else ranges.push({ tab: r.tab, startRow: r.row, rows: [r.cells] });
  }
  return ranges;
}
