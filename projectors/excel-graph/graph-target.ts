/**
 * The Excel Online mirror: a SheetTarget over the Microsoft Graph workbook API
 * (`/drives/{driveId}/items/{itemId}/workbook`), through the official Graph client.
 *
 * Invariants it keeps:
 * - Every call runs in one persistent workbook session (`workbook-session-id`). A session Graph reports
 *   as gone (`invalidSessionReCreatable`) is re-created and that call sent once more; a session idle for
 *   four minutes is refreshed first (Graph drops persistent sessions after about five idle minutes).
 *   That re-send is the only retry here: 429, 5xx and network errors become ProviderError for the engine,
 *   and the Graph client's RetryHandler is left out of the middleware chain.
 * - Values are data, never formulas. Graph parses a string set through `values` like typed input
 *   (`=…`, `+…`, `-…` become formulas, `00123` a number), so every non-empty string is written with
 *   Excel's quote prefix (`'…`); Excel keeps the text without the apostrophe, so reads return it unchanged.
 * - A `null` in `values` leaves that cell unchanged (Graph "Update range": null tells the API to ignore
 *   the cell), so no range is split around nulls; instead scattered RangeWrites of a tab are merged into
 *   one rectangle padded with nulls, keeping a flush within one `$batch` where the size allows.
 * - Writes to locked cells of a protected sheet are refused by Excel (AccessDenied), even for `null`
 *   cells, so a write unprotects the tabs it touches, writes, and protects them again, all sequenced
 *   (`dependsOn`) inside as few `$batch` calls as the 20-request limit allows.
 * - Cell notes: Graph v1.0 can only list and get workbook comments (creating one is beta-only and not
 *   available to application permissions), so notes go to a visible "Sync notes" worksheet instead:
 *   one row per cell (tab, cell, note, at); `text: null` clears the row.
 */
import {
  Client,
  GraphError,
  HTTPMessageHandler,
  type AuthenticationProvider,
  type Context,
  type Middleware,
} from '@microsoft/microsoft-graph-client';
import type { Logger } from 'pino';
import {
  ProviderError,
  retryAfterMs,
  type CellNote,
  type CellValue,
  type RangeWrite,
  type SheetTarget,
  type TabSpec,
} from '../sheet-sync/sheet-target.ts';
import { columnLetter } from '../sheet-sync/layout.ts';

export interface ExcelGraphTargetProps {
  driveId: string;
  itemId: string;
  auth: AuthenticationProvider;
  /** default https://graph.microsoft.com */
  baseUrl?: string;
  log?: Logger;
  /** milliseconds since the epoch; injectable for tests */
  clock?: () => number;
}

/** The worksheet that stands in for cell comments (see the module comment). */
export const NOTES_SHEET = 'Sync notes';
const NOTES_HEADER = ['tab', 'cell', 'note', 'at'];
const BATCH_LIMIT = 20;
const REFRESH_IDLE_MS = 4 * 60_000;
const LAST_ROW = 1_048_576;
const SESSION_GONE = new Set(['invalidsession', 'invalidsessionrecreatable', 'sessionnotfound']);
/** People may filter; everything else that could move or reshape synced cells stays off. */
const PROTECTION_OPTIONS = {
  allowFormatCells: false,
  allowFormatColumns: false,
  allowFormatRows: false,
  allowInsertColumns: false,
  allowInsertRows: false,
  allowInsertHyperlinks: false,
  allowDeleteColumns: false,
  allowDeleteRows: false,
  allowSort: false,
  allowAutoFilter: true,
  allowPivotTables: false,
};

interface Op {
  method: 'GET' | 'POST' | 'PATCH';
  /** relative to the workbook */
  url: string;
  body?: unknown;
}
interface OpResult {
  status: number;
  body: any;
  headers: Record<string, string>;
}

/** Adds the bearer token to every request (the stock AuthenticationHandler skips hosts it does not know). */
class BearerAuthHandler implements Middleware {
  private next?: Middleware;
  constructor(private readonly auth: AuthenticationProvider) {}
  async execute(context: Context): Promise<void> {
    const token = await this.auth.getAccessToken();
    const headers = { ...(context.options?.headers as Record<string, string> | undefined), Authorization: `Bearer ${token}` };
    context.options = { ...context.options, headers };
    await this.next!.execute(context);
  }
  setNext(next: Middleware): void {
    this.next = next;
  }
}

/** The quote prefix makes Excel store any string as text; '' still clears the cell. */
function literal(v: CellValue): CellValue {
  return typeof v === 'string' && v !== '' ? `'${v}` : v;
}

function errorCodes(body: any): string[] {
  const codes: string[] = [];
  for (let e = body?.error ?? body; e && codes.length < 5; e = e.innerError ?? e.innererror) {
    if (typeof e.code === 'string') codes.push(e.code.toLowerCase());
  }
  return codes;
}

/**
 * Merges the range writes of each tab into as few rectangles as possible, gap rows and short rows filled
 * with `null` (which Graph leaves unchanged), so a flush needs few PATCHes however scattered its rows are.
 * A rectangle stays under `maxCells`; where ranges overlap, the later one wins, as if written in order.
 */
export function mergeRangeWrites(ranges: RangeWrite[], maxCells = 25_000): RangeWrite[] {
  const order = ranges.map((_, i) => i).filter((i) => ranges[i]!.rows.length > 0);
  order.sort((a, b) => ranges[a]!.tab.localeCompare(ranges[b]!.tab) || ranges[a]!.startRow - ranges[b]!.startRow);
  const spans: { tab: string; start: number; end: number; width: number; members: number[] }[] = [];
  for (const i of order) {
    const r = ranges[i]!;
    const end = r.startRow + r.rows.length - 1;
    const width = Math.max(1, ...r.rows.map((row) => row.length));
    const span = spans[spans.length - 1];
    const merged = span && span.tab === r.tab && { end: Math.max(span.end, end), width: Math.max(span.width, width) };
    if (span && merged && (merged.end - span.start + 1) * merged.width <= maxCells) {
      Object.assign(span, merged);
      span.members.push(i);
    } else {
      spans.push({ tab: r.tab, start: r.startRow, end, width, members: [i] });
    }
  }
  return spans.map((span) => {
    const rows: CellValue[][] = Array.from({ length: span.end - span.start + 1 }, () => Array<CellValue>(span.width).fill(null));
    for (const i of span.members.sort((a, b) => a - b)) {
      const r = ranges[i]!;
      r.rows.forEach((row, k) => row.forEach((v, c) => {
        if (v !== null) rows[r.startRow - span.start + k]![c] = v;
      }));
    }
    return { tab: span.tab, startRow: span.start, rows };
  });
}

/** Creates the Excel Online SheetTarget for one workbook. */
export function createExcelGraphTarget(props: ExcelGraphTargetProps): SheetTarget {
  const log = props.log?.child({ component: 'excel-graph', itemId: props.itemId });
  const clock = props.clock ?? Date.now;
  const client = Client.initWithMiddleware({
    middleware: [new BearerAuthHandler(props.auth), new HTTPMessageHandler()],
    baseUrl: props.baseUrl ?? 'https://graph.microsoft.com',
    defaultVersion: 'v1.0',
  });
  const workbook = `/drives/${encodeURIComponent(props.driveId)}/items/${encodeURIComponent(props.itemId)}/workbook`;
  const sheetUrl = (tab: string) => `/worksheets/${encodeURIComponent(tab)}`;

  let session: { id: string; lastUsed: number } | undefined;
  let opening: Promise<string> | undefined;
  /** tab → protected? (absent: not known, ask Graph before writing) */
  const protectedTabs = new Map<string, boolean>();
  /** tabs ensureLayout set up: they end every write protected, even if an interrupted write left them open */
  const laidOut = new Set<string>();
  /** notes sheet rows by "tab!A1"; undefined until loaded */
  let notesIndex: { rows: Map<string, number>; free: number[]; next: number } | undefined;

  function translate(err: unknown, what: string): ProviderError {
    if (err instanceof ProviderError) return err;
    if (err instanceof GraphError) {
      const status = err.statusCode > 0 ? err.statusCode : 0;
      return Object.assign(new ProviderError(`${what}: ${err.code ?? 'error'}: ${err.message}`, status, retryAfterMs(err.headers?.get('retry-after'))), { cause: err });
    }
    return Object.assign(new ProviderError(`${what}: ${(err as Error)?.message ?? String(err)}`, 0), { cause: err });
  }
  function isSessionGone(err: unknown): boolean {
    if (!(err instanceof GraphError)) return false;
    let body: unknown;
    try {
      body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
    } catch {
      body = undefined;
    }
    return [err.code?.toLowerCase(), ...errorCodes(body)].some((c) => c !== undefined && SESSION_GONE.has(c));
  }

  /** One Graph call; a token failure keeps its ProviderError (the client would wrap it without a status). */
  async function send(method: Op['method'], url: string, body?: unknown, sessionId?: string): Promise<any> {
    await props.auth.getAccessToken();
    let request = client.api(url);
    if (sessionId) request = request.header('workbook-session-id', sessionId);
    if (method === 'GET') return request.get();
    return method === 'POST' ? request.post(body ?? {}) : request.patch(body);
  }

  async function openSession(): Promise<string> {
    try {
      const info = await send('POST', `${workbook}/createSession`, { persistChanges: true });
      session = { id: String(info.id), lastUsed: clock() };
      log?.info('workbook session created');
      return session.id;
    } catch (err) {
      throw translate(err, 'createSession');
    }
  }
  async function currentSession(): Promise<string> {
    if (session && clock() - session.lastUsed > REFRESH_IDLE_MS) {
      try {
        await send('POST', `${workbook}/refreshSession`, {}, session.id);
        session.lastUsed = clock();
      } catch (err) {
        if (!isSessionGone(err)) throw translate(err, 'refreshSession');
        session = undefined;
      }
    }
    if (session) return session.id;
    opening ??= openSession().finally(() => {
      opening = undefined;
    });
    return opening;
  }
  function dropSession(id: string) {
    if (session?.id === id) session = undefined;
    log?.warn('workbook session gone; creating a new one');
  }

  /** A single workbook call in the session, re-sent once in a new session if Graph dropped the old one. */
  async function call(op: Op): Promise<any> {
    for (let attempt = 0; ; attempt++) {
      const id = await currentSession();
      try {
        const result = await send(op.method, workbook + op.url, op.body, id);
        if (session) session.lastUsed = clock();
        return result;
      } catch (err) {
        if (attempt === 0 && isSessionGone(err)) {
          dropSession(id);
          continue;
        }
        throw translate(err, `${op.method} ${op.url}`);
      }
    }
  }

  /**
   * Sends ops in $batch calls of up to 20. Sequenced ops run in order (each depends on the one before);
   * the others may run in parallel. Throws the first real failure (not a 424 "failed dependency") unless
   * its status is in `tolerate`, in which case that op's result carries it.
   */
  async function batch(ops: Op[], opts: { sequenced: boolean; tolerate?: number[] }): Promise<OpResult[]> {
    const results: OpResult[] = [];
    for (let start = 0; start < ops.length; start += BATCH_LIMIT) {
      const chunk = ops.slice(start, start + BATCH_LIMIT);
      const done = new Map<number, OpResult>();
      for (let attempt = 0; ; attempt++) {
        const id = await currentSession();
        const pending = chunk.map((_, i) => i).filter((i) => !done.has(i) || done.get(i)!.status >= 400);
        const requests = pending.map((i, k) => ({
          id: String(i),
          method: chunk[i]!.method,
          url: workbook + chunk[i]!.url,
          headers: { 'workbook-session-id': id, 'Content-Type': 'application/json' },
          ...(chunk[i]!.method === 'GET' ? {} : { body: chunk[i]!.body ?? {} }),
          ...(opts.sequenced && k > 0 ? { dependsOn: [String(pending[k - 1])] } : {}),
        }));
        let response: { responses?: { id: string; status: number; body?: any; headers?: Record<string, string> }[] };
        try {
          response = await send('POST', '/$batch', { requests });
        } catch (err) {
          if (attempt === 0 && isSessionGone(err)) {
            dropSession(id);
            continue;
          }
          throw translate(err, `$batch of ${requests.length}`);
        }
        if (session) session.lastUsed = clock();
        for (const r of response.responses ?? []) {
          const headers = Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
          done.set(Number(r.id), { status: r.status, body: r.body, headers });
        }
        const gone = [...done.values()].some((r) => r.status >= 400 && errorCodes(r.body).some((c) => SESSION_GONE.has(c)));
        if (gone && attempt === 0) {
          dropSession(id);
          continue;
        }
        break;
      }
      const outcome = chunk.map((op, i) => ({
        op,
        r: done.get(i) ?? { status: 502, body: { error: { code: 'MissingResponse', message: 'no response in $batch' } }, headers: {} },
      }));
      results.push(...outcome.map(({ r }) => r));
      // a 424 only echoes an earlier failure, so report that one
      const isFailure = (r: OpResult) => r.status >= 400 && !opts.tolerate?.includes(r.status);
      const failed = outcome.find(({ r }) => isFailure(r) && r.status !== 424) ?? outcome.find(({ r }) => isFailure(r));
      if (failed) {
        const error = failed.r.body?.error;
        throw new ProviderError(
          `${failed.op.method} ${failed.op.url} (in $batch): ${error?.code ?? failed.r.status}: ${error?.message ?? 'failed'}`,
          failed.r.status,
          retryAfterMs(failed.r.headers['retry-after']),
        );
      }
    }
    return results;
  }

  async function worksheetNames(): Promise<Set<string>> {
    const list = await call({ method: 'GET', url: '/worksheets?$select=name' });
    return new Set((list?.value ?? []).map((w: { name: string }) => w.name));
  }

  /** Makes sure the notes sheet exists and its rows are indexed. */
  async function loadNotes(names?: Set<string>): Promise<NonNullable<typeof notesIndex>> {
    if (notesIndex) return notesIndex;
    const existing = names ?? (await worksheetNames());
    const index = { rows: new Map<string, number>(), free: [] as number[], next: 2 };
    if (!existing.has(NOTES_SHEET)) {
      await batch(
        [
          { method: 'POST', url: '/worksheets/add', body: { name: NOTES_SHEET } },
          { method: 'PATCH', url: `${sheetUrl(NOTES_SHEET)}/range(address='A1:D1')`, body: { values: [NOTES_HEADER] } },
        ],
        { sequenced: true },
      );
    } else {
      const used = await call({ method: 'GET', url: `${sheetUrl(NOTES_SHEET)}/usedRange(valuesOnly=true)?$select=address,values` });
      gridFrom(used).forEach((row, i) => {
        if (i === 0) return;
        if (row[0] === null) index.free.push(i + 1);
        else index.rows.set(`${row[0]}!${row[1]}`, i + 1);
        index.next = i + 2;
      });
    }
    notesIndex = index;
    return index;
  }

  /** Values from row 1 and column A of a usedRange response; '' → null, trailing empty rows dropped. */
  function gridFrom(used: { address?: string; values?: unknown[][] }): CellValue[][] {
    const ref = String(used.address ?? 'A1').split('!').pop()!.replaceAll('$', '');
    const m = /^([A-Z]+)(\d+)/.exec(ref);
    const col0 = m ? [...m[1]!].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0) - 1 : 0;
    const row0 = m ? Number(m[2]) - 1 : 0;
    const rows: CellValue[][] = Array.from({ length: row0 }, () => []);
    for (const row of used.values ?? []) {
      const cells = row.map((v) => (v === '' || v === undefined ? null : (v as CellValue)));
      rows.push([...Array<CellValue>(col0).fill(null), ...cells]);
    }
    while (rows.length > 0 && rows[rows.length - 1]!.every((v) => v === null)) rows.pop();
    return rows;
  }

  function layoutOps(tab: TabSpec, isNew: boolean): Op[] {
    const url = sheetUrl(tab.title);
    const last = tab.header.length - 1;
    const ops: Op[] = isNew ? [{ method: 'POST', url: '/worksheets/add', body: { name: tab.title } }] : [];
    ops.push({ method: 'PATCH', url: `${url}/range(address='A1:${columnLetter(last)}1')`, body: { values: [tab.header.map(literal)] } });
    if (tab.firstHiddenColumn <= last) {
      const cols = `${columnLetter(tab.firstHiddenColumn)}:${columnLetter(last)}`;
      ops.push({ method: 'PATCH', url: `${url}/range(address='${cols}')`, body: { columnHidden: true } });
    }
    // contiguous editable columns unlock together; row 1 (the header) stays locked
    const editable = [...new Set(tab.editableColumns)].sort((a, b) => a - b);
    for (let i = 0; i < editable.length; ) {
      let j = i;
      while (j + 1 < editable.length && editable[j + 1] === editable[j]! + 1) j++;
      const address = `${columnLetter(editable[i]!)}2:${columnLetter(editable[j]!)}${LAST_ROW}`;
      ops.push({ method: 'PATCH', url: `${url}/range(address='${address}')/format/protection`, body: { locked: false } });
      i = j + 1;
    }
    ops.push({ method: 'POST', url: `${url}/protection/protect`, body: { options: PROTECTION_OPTIONS } });
    return ops;
  }

  /** Asks Graph whether the given tabs are protected (one $batch), for tabs whose state is not known. */
  async function learnProtection(tabs: string[]): Promise<void> {
    const unknown = tabs.filter((t) => !protectedTabs.has(t));
    if (unknown.length === 0) return;
    const results = await batch(unknown.map((t) => ({ method: 'GET', url: `${sheetUrl(t)}/protection` })), { sequenced: false });
    unknown.forEach((t, i) => protectedTabs.set(t, Boolean(results[i]!.body?.protected)));
  }

  return {
    kind: 'excel-graph',
    readBeforeWrite: true,

    async ensureLayout(tabs: TabSpec[]): Promise<void> {
      const names = await worksheetNames();
      await learnProtection(tabs.map((t) => t.title).filter((t) => names.has(t)));
      // a protected tab is taken as laid out: this leaves it alone, so a person's own changes survive
      const ops = tabs.filter((t) => !protectedTabs.get(t.title)).flatMap((t) => layoutOps(t, !names.has(t.title)));
      if (ops.length > 0) {
        await batch(ops, { sequenced: true });
        log?.info({ tabs: tabs.map((t) => t.title) }, 'workbook layout ensured');
      }
      for (const t of tabs) {
        protectedTabs.set(t.title, true);
        laidOut.add(t.title);
      }
      await loadNotes(names);
    },

    async read(tabs: string[]): Promise<Map<string, CellValue[][]>> {
      const grids = new Map<string, CellValue[][]>();
      if (tabs.length === 0) return grids;
      const ops: Op[] = tabs.map((t) => ({ method: 'GET', url: `${sheetUrl(t)}/usedRange(valuesOnly=true)?$select=address,values` }));
      const results = await batch(ops, { sequenced: false, tolerate: [404] });
      tabs.forEach((tab, i) => {
        const r = results[i]!;
        if (r.status < 400) grids.set(tab, gridFrom(r.body ?? {}));
      });
      return grids;
    },

    async write(ranges: RangeWrite[], notes: CellNote[]): Promise<void> {
      const touched = [...new Set(ranges.filter((r) => r.rows.length > 0).map((r) => r.tab))];
      await learnProtection(touched);
      const reprotect = touched.filter((t) => protectedTabs.get(t) || laidOut.has(t));
      const ops: Op[] = touched
        .filter((t) => protectedTabs.get(t))
        .map((t) => ({ method: 'POST', url: `${sheetUrl(t)}/protection/unprotect`, body: {} }));
      for (const r of mergeRangeWrites(ranges)) {
        const width = Math.max(1, ...r.rows.map((row) => row.length));
        const values = r.rows.map((row) => Array.from({ length: width }, (_, c) => literal(row[c] ?? null)));
        const address = `A${r.startRow}:${columnLetter(width - 1)}${r.startRow + r.rows.length - 1}`;
        ops.push({ method: 'PATCH', url: `${sheetUrl(r.tab)}/range(address='${address}')`, body: { values } });
      }
      const index = notes.length > 0 ? await loadNotes() : undefined;
      const at = new Date(clock()).toISOString();
      for (const n of notes) {
        const key = `${n.tab}!${columnLetter(n.column)}${n.row}`;
        let row = index!.rows.get(key);
        if (n.text === null) {
          if (row === undefined) continue;
          index!.rows.delete(key);
          index!.free.push(row);
        } else if (row === undefined) {
          row = index!.free.shift() ?? index!.next++;
          index!.rows.set(key, row);
        }
        const values = n.text === null ? [['', '', '', '']] : [[n.tab, key.slice(key.lastIndexOf('!') + 1), n.text, at].map(literal)];
        ops.push({ method: 'PATCH', url: `${sheetUrl(NOTES_SHEET)}/range(address='A${row}:D${row}')`, body: { values } });
      }
      ops.push(...reprotect.map((t): Op => ({ method: 'POST', url: `${sheetUrl(t)}/protection/protect`, body: { options: PROTECTION_OPTIONS } })));
      if (ops.length === 0) return;
      // until the batch succeeds nobody knows how far it got
      for (const t of reprotect) protectedTabs.delete(t);
      try {
        await batch(ops, { sequenced: true });
      } catch (err) {
        if (notes.length > 0) notesIndex = undefined;
        throw err;
      }
      for (const t of reprotect) protectedTabs.set(t, true);
    },

    async close(): Promise<void> {
      const id = session?.id;
      session = undefined;
      if (!id) return;
      try {
        await send('POST', `${workbook}/closeSession`, {}, id);
      } catch (err) {
        log?.warn({ err: translate(err, 'closeSession') }, 'closing the workbook session failed; Graph expires it on its own');
      }
    },
  };
}
