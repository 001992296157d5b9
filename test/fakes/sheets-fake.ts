/**
 * An in-process fake of the Google Sheets v4 REST API, for driving the real `@googleapis/sheets` client
 * in tests. It speaks the wire protocol of exactly these endpoints:
 *   GET  /v4/spreadsheets/{id}                    sheets[].properties (+gridProperties), sheets[].protectedRanges
 *                                                  (`fields` is ignored: the whole resource is returned)
 *   POST /v4/spreadsheets/{id}:batchUpdate        addSheet, updateCells (userEnteredValue, note), appendDimension,
 *                                                  updateDimensionProperties (hiddenByUser), addProtectedRange
 *   GET  /v4/spreadsheets/{id}/values:batchGet    A1 ranges ('Tab', 'Tab'!A1:L10, Tab!A5:L, A1:B2 on the first tab);
 *                                                  majorDimension ROWS; UNFORMATTED_VALUE or FORMATTED_VALUE
 *   POST /v4/spreadsheets/{id}/values:batchUpdate valueInputOption RAW: values kept as sent, null skipped, "" clears
 * Like Google: a request without `Authorization: Bearer` gets 401, an unknown spreadsheet 404, an unknown tab in
 * a range 400 "Unable to parse range", a write outside the grid 400 "exceeds grid limits", errors carry
 * `{ error: { code, message, status } }`, reads trim trailing empty rows and cells (interior empty cells come
 * back as ""), and each batchUpdate is all-or-nothing. Formulas, formats and USER_ENTERED parsing are not modelled.
 * For a mirror running as its own process (OAuth refresh-token credentials), `tokenUrl` answers Google's token
 * endpoint with a fresh access token (never faulted: faults model the Sheets API, not sign-in).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CellValue } from '../../projectors/sheet-sync/sheet-target.ts';

type Stored = string | number | boolean;
interface GridRange { sheetId: number; startRowIndex?: number; endRowIndex?: number; startColumnIndex?: number; endColumnIndex?: number }
interface ProtectedRange { protectedRangeId: number; range: GridRange; description?: string; warningOnly?: boolean }
interface Tab {
  sheetId: number; title: string; rowCount: number; columnCount: number; frozenRowCount: number;
  cells: (Stored | undefined)[][]; notes: Map<string, string>; hidden: Set<number>; protectedRanges: ProtectedRange[];
}
interface Area { tab: Tab; r0: number; r1: number; c0: number; c1: number } // 0-based, end-exclusive

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE',
};
const FAULT_MESSAGES: Record<number, string> = {
  429: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service 'sheets.googleapis.com'.",
  503: 'The service is currently unavailable.',
};

class ApiError extends Error {
  constructor(readonly code: number, message: string) { super(message); }
}

export const columnName = (c: number): string => (c >= 26 ? columnName(Math.floor(c / 26) - 1) : '') + String.fromCharCode(65 + (c % 26));
const columnIndex = (letters: string) => [...letters.toUpperCase()].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0) - 1;
/** Google quotes a title in A1 notation only when it has to. */
const quoteTitle = (t: string) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(t) && !/^[A-Za-z]{1,3}\d+$/.test(t) ? t : `'${t.replaceAll("'", "''")}'`);
const a1 = ({ tab, r0, r1, c0, c1 }: Area) => {
  const start = `${columnName(c0)}${r0 + 1}`, end = `${columnName(c1 - 1)}${r1}`;
  return `${quoteTitle(tab.title)}!${start === end ? start : `${start}:${end}`}`;
};

export interface SheetsFake {
  /** rootUrl for the client, e.g. http://127.0.0.1:PORT/ */
  readonly url: string;
  readonly spreadsheetId: string;
  /** successful write calls that changed the spreadsheet */
  readonly writeCalls: number;
  /** successful read calls (spreadsheets.get and values.batchGet) */
  readonly readCalls: number;
  /** every request that arrived, answered or rejected */
  readonly requests: number;
  /** The tab's values from row 1, trimmed as Google trims them, empty cells null. */
  grid(tab: string): CellValue[][];
  /** Simulates a person typing into a cell; null or "" empties it. */
  setCell(tab: string, a1: string, value: CellValue): void;
  note(tab: string, a1: string): string | undefined;
  hiddenColumns(tab: string): number[];
  protectedRanges(tab: string): ProtectedRange[];
  /** Simulates a person deleting a tab. */
  deleteTab(tab: string): void;
  /** OAuth token endpoint (GOOGLE_TOKEN_URL) granting any refresh token an access token */
  readonly tokenUrl: string;
  /** The next n requests answer `status` (with Retry-After when given). */
  failNext(n: number, status: number, retryAfterSeconds?: number): void;
  /** Every request answers `status` (with Retry-After when given) until resetFaults(). */
  failAll(status: number, retryAfterSeconds?: number): void;
  /** Every k-th request from now answers `status` with Retry-After. */
  rejectEvery(k: number, status?: number, retryAfterSeconds?: number): void;
  /** Holds every answer back by ms. */
  delay(ms: number): void;
  resetFaults(): void;
  close(): Promise<void>;
}

/** Called synchronously after each write call that changed the spreadsheet (grid() already shows it); must not throw. */
export type SheetsWriteHook = (write: { at: number; writeCalls: number }) => void;

/** Starts the fake on a free loopback port with one empty spreadsheet. */
export async function startSheetsFake(props: { spreadsheetId?: string; onWrite?: SheetsWriteHook } = {}): Promise<SheetsFake> {
  const spreadsheetId = props.spreadsheetId ?? 'fake-spreadsheet';
  let tabs: Tab[] = [];
  let version = 0; // bumped by every mutation, so a call "changed something" when it moved
  let nextProtectedRangeId = 1000;
  const counters = { writeCalls: 0, readCalls: 0, requests: 0 };
  let faults = {
    failNext: 0, failStatus: 0, failRetryAfter: undefined as number | undefined,
    every: 0, everyStatus: 429, everyRetryAfter: 1, seen: 0, delayMs: 0,
  };

  const tabByTitle = (title: string) => tabs.find((t) => t.title === title);
  const tabById = (sheetId: number) => {
    const tab = tabs.find((t) => t.sheetId === sheetId);
    if (!tab) throw new ApiError(400, `No grid with id: ${sheetId}`);
    return tab;
  };
  const mustTab = (title: string) => {
    const tab = tabByTitle(title);
    if (!tab) throw new Error(`sheets fake: no tab "${title}"`);
    return tab;
  };

  function parseRange(range: string): Area {
    let title: string | undefined, cellPart = '';
    const quoted = /^'((?:[^']|'')+)'(?:!(.*))?$/.exec(range);
    if (quoted) [title, cellPart] = [quoted[1]!.replaceAll("''", "'"), quoted[2] ?? ''];
    else if (range.includes('!')) [title, cellPart] = [range.slice(0, range.indexOf('!')), range.slice(range.indexOf('!') + 1)];
    else if (tabByTitle(range)) title = range;
    else cellPart = range;
    const tab = title === undefined ? tabs[0] : tabByTitle(title);
    const cells = /^([A-Za-z]*)(\d*)(?::([A-Za-z]*)(\d*))?$/.exec(cellPart);
    if (!tab || !cells) throw new ApiError(400, `Unable to parse range: ${range}`);
    const [, c0 = '', r0 = '', c1 = c0, r1 = r0] = cells;
    const area = {
      tab,
      r0: r0 ? Number(r0) - 1 : 0, r1: r1 ? Number(r1) : tab.rowCount,
      c0: c0 ? columnIndex(c0) : 0, c1: c1 ? columnIndex(c1) + 1 : tab.columnCount,
    };
    if (area.r1 > tab.rowCount || area.c1 > tab.columnCount) {
      throw new ApiError(400, `Range (${a1(area)}) exceeds grid limits. Max rows: ${tab.rowCount}, max columns: ${tab.columnCount}`);
    }
    return area;
  }

  function store(tab: Tab, r: number, c: number, value: Stored | undefined) {
    const row = (tab.cells[r] ??= []);
    if (row[c] !== value) version++;
    row[c] = value;
  }

  function readArea({ tab, r0, r1, c0, c1 }: Area, render: (v: Stored | undefined) => CellValue | string): (CellValue | string)[][] {
    const rows: (CellValue | string)[][] = [];
    for (let r = r0; r < Math.min(r1, tab.cells.length); r++) {
      const row = (tab.cells[r] ?? []).slice(c0, c1);
      while (row.length && row.at(-1) === undefined) row.pop();
      rows.push(Array.from(row, render));
    }
    while (rows.length && rows.at(-1)!.length === 0) rows.pop();
    return rows;
  }

  function setNote(tab: Tab, key: string, text: string | undefined) {
    if (tab.notes.get(key) === text) return;
    version++;
    if (text) tab.notes.set(key, text);
    else tab.notes.delete(key);
  }

  // one request of spreadsheets.batchUpdate; returns its reply
  function applyRequest(request: Record<string, any>, i: number): object {
    const [kind, body] = Object.entries(request)[0] ?? [];
    const invalid = (message: string) => new ApiError(400, `Invalid requests[${i}].${kind}: ${message}`);
    switch (kind) {
      case 'addSheet': {
        const p = body.properties ?? {};
        const title: string = p.title ?? `Sheet${tabs.length + 1}`;
        if (tabByTitle(title)) throw invalid(`A sheet with the name "${title}" already exists. Please enter another name.`);
        const sheetId: number = p.sheetId ?? Math.floor(Math.random() * 2 ** 31);
        if (tabs.some((t) => t.sheetId === sheetId)) throw invalid(`Sheet with id ${sheetId} already exists.`);
        const g = p.gridProperties ?? {};
        const tab: Tab = {
          sheetId, title, rowCount: g.rowCount ?? 1000, columnCount: g.columnCount ?? 26, frozenRowCount: g.frozenRowCount ?? 0,
          cells: [], notes: new Map(), hidden: new Set(), protectedRanges: [],
        };
        tabs.push(tab);
        version++;
        return { addSheet: { properties: sheetProperties(tab) } };
      }
      case 'updateCells': {
        const tab = tabById(body.range?.sheetId ?? body.start?.sheetId);
        const r0 = body.range?.startRowIndex ?? body.start?.rowIndex ?? 0;
        const c0 = body.range?.startColumnIndex ?? body.start?.columnIndex ?? 0;
        const fields = String(body.fields ?? '').split(',').map((f) => f.trim());
        if (fields.length === 0 || fields[0] === '') throw invalid('At least one field must be specified.');
        const all = fields.includes('*');
        (body.rows ?? []).forEach((row: any, dr: number) =>
          (row.values ?? []).forEach((cell: any, dc: number) => {
            const [r, c] = [r0 + dr, c0 + dc];
            if (r >= tab.rowCount || c >= tab.columnCount) {
              const cell = a1({ tab, r0: r, r1: r + 1, c0: c, c1: c + 1 });
              throw invalid(`Range (${cell}) exceeds grid limits. Max rows: ${tab.rowCount}, max columns: ${tab.columnCount}`);
            }
            if (all || fields.includes('userEnteredValue')) {
              const v = cell.userEnteredValue ?? {};
              store(tab, r, c, v.stringValue ?? v.numberValue ?? v.boolValue ?? v.formulaValue);
            }
            if (all || fields.includes('note')) setNote(tab, `${r},${c}`, cell.note ?? undefined);
          }),
        );
        return {};
      }
      case 'appendDimension': {
        const tab = tabById(body.sheetId);
        if (body.dimension === 'ROWS') tab.rowCount += body.length;
        else tab.columnCount += body.length;
        version++;
        return {};
      }
      case 'updateDimensionProperties': {
        const { sheetId, dimension, startIndex = 0, endIndex } = body.range ?? {};
        const tab = tabById(sheetId);
        if (dimension === 'COLUMNS' && String(body.fields).includes('hiddenByUser')) {
          for (let c = startIndex; c < (endIndex ?? tab.columnCount); c++) {
            const hide = body.properties?.hiddenByUser === true;
            if (tab.hidden.has(c) !== hide) version++;
            if (hide) tab.hidden.add(c);
            else tab.hidden.delete(c);
          }
        }
        return {};
      }
      case 'addProtectedRange': {
        const protectedRange = { ...body.protectedRange, protectedRangeId: nextProtectedRangeId++ };
        tabById(protectedRange.range?.sheetId).protectedRanges.push(protectedRange);
        version++;
        return { addProtectedRange: { protectedRange } };
      }
      default:
        throw new ApiError(400, `Invalid requests[${i}]: the sheets fake does not implement "${kind}"`);
    }
  }

  const sheetProperties = (t: Tab) => ({
    sheetId: t.sheetId, title: t.title, index: tabs.indexOf(t), sheetType: 'GRID',
    gridProperties: { rowCount: t.rowCount, columnCount: t.columnCount, ...(t.frozenRowCount ? { frozenRowCount: t.frozenRowCount } : {}) },
  });

  // an all-or-nothing mutation: on an error the tabs are restored as they were
  function mutate<T>(change: () => T): T {
    const [before, versionBefore] = [structuredClone(tabs), version];
    try {
      const result = change();
      if (version !== versionBefore) {
        counters.writeCalls++;
        props.onWrite?.({ at: Date.now(), writeCalls: counters.writeCalls });
      }
      return result;
    } catch (err) {
      [tabs, version] = [before, versionBefore];
      throw err;
    }
  }

  function route(method: string, url: URL, body: any): object {
    const m = /^\/v4\/spreadsheets\/([^/:]+)(\/values)?(?::(\w+))?$/.exec(decodeURIComponent(url.pathname));
    if (!m) throw new ApiError(404, `Method not found: ${method} ${url.pathname}`);
    if (m[1] !== spreadsheetId) throw new ApiError(404, 'Requested entity was not found.');
    const endpoint = `${method} ${m[2] ?? ''}:${m[3] ?? ''}`;
    switch (endpoint) {
      case 'GET :':
        counters.readCalls++;
        return {
          spreadsheetId, properties: { title: 'stockwire (fake)', locale: 'en_US', timeZone: 'Etc/GMT' },
          sheets: tabs.map((t) => ({ properties: sheetProperties(t), ...(t.protectedRanges.length ? { protectedRanges: t.protectedRanges } : {}) })),
          spreadsheetUrl: `https://docs.google.com/spreadsheets/d/${spreadsheetId}/edit`,
        };
      case 'POST :batchUpdate':
        return mutate(() => ({ spreadsheetId, replies: (body.requests ?? []).map(applyRequest) }));
      case 'GET /values:batchGet': {
        if ((url.searchParams.get('majorDimension') ?? 'ROWS') !== 'ROWS') throw new ApiError(400, 'the sheets fake reads ROWS only');
        const unformatted = url.searchParams.get('valueRenderOption') === 'UNFORMATTED_VALUE';
        const render = (v: Stored | undefined) =>
          v === undefined ? '' : unformatted || typeof v === 'string' ? v : String(v).toUpperCase(); // 12 → "12", true → "TRUE"
        const valueRanges = url.searchParams.getAll('ranges').map((range) => {
          const area = parseRange(range);
          const values = readArea(area, render);
          return { range: a1(area), majorDimension: 'ROWS', ...(values.length ? { values } : {}) };
        });
        counters.readCalls++;
        return { spreadsheetId, valueRanges };
      }
      case 'POST /values:batchUpdate':
        if (body.valueInputOption !== 'RAW') throw new ApiError(400, 'the sheets fake implements valueInputOption RAW only');
        return mutate(() => {
          const responses = (body.data ?? []).map((vr: { range: string; values?: unknown[][] }) => {
            const area = parseRange(vr.range);
            const values = vr.values ?? [];
            let updatedCells = 0;
            values.forEach((row, dr) =>
              row.forEach((value, dc) => {
                if (dr >= area.r1 - area.r0 || dc >= area.c1 - area.c0) {
                  const at = `row [${area.r0 + dr + 1}] column [${columnName(area.c0 + dc)}]`;
                  throw new ApiError(400, `Requested writing within range [${vr.range}], but tried writing to ${at}`);
                }
                if (value === null) return; // null is skipped: the cell keeps its value
                store(area.tab, area.r0 + dr, area.c0 + dc, value === '' ? undefined : (value as Stored));
                updatedCells++;
              }),
            );
            return { spreadsheetId, updatedRange: vr.range, updatedRows: values.length, updatedCells };
          });
          return { spreadsheetId, totalUpdatedCells: responses.reduce((n: number, r: any) => n + r.updatedCells, 0), responses };
        });
      default:
        throw new ApiError(404, `Method not found: ${endpoint}`);
    }
  }

  function send(res: http.ServerResponse, code: number, body: object, headers: Record<string, string> = {}) {
    res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8', ...headers }).end(JSON.stringify(body));
  }
  const sendError = (res: http.ServerResponse, code: number, message: string, headers?: Record<string, string>) =>
    send(res, code, { error: { code, message, status: STATUS_NAMES[code] ?? 'UNKNOWN' } }, headers);

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    if (req.method === 'POST' && req.url === '/token') {
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const grant = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (!grant.get('refresh_token')) return send(res, 400, { error: 'invalid_request', error_description: 'Missing required parameter: refresh_token' });
      return send(res, 200, { access_token: `fake-access-${Date.now()}`, expires_in: 3599, token_type: 'Bearer', scope: 'https://www.googleapis.com/auth/spreadsheets' });
    }
    counters.requests++;
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (faults.delayMs) await new Promise((r) => setTimeout(r, faults.delayMs));
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) {
      return sendError(res, 401, 'Request is missing required authentication credential. Expected OAuth 2 access token.');
    }
    faults.seen++;
    const fault = faults.failNext > 0
      ? (faults.failNext--, { status: faults.failStatus, retryAfter: faults.failRetryAfter })
      : faults.every && faults.seen % faults.every === 0 ? { status: faults.everyStatus, retryAfter: faults.everyRetryAfter } : undefined;
    if (fault) {
      const headers: Record<string, string> = fault.retryAfter === undefined ? {} : { 'retry-after': String(fault.retryAfter) };
      return sendError(res, fault.status, FAULT_MESSAGES[fault.status] ?? `Injected failure ${fault.status}`, headers);
    }
    try {
      const text = Buffer.concat(chunks).toString('utf8');
      send(res, 200, route(req.method ?? 'GET', new URL(req.url ?? '/', 'http://fake'), text ? JSON.parse(text) : {}));
    } catch (err) {
      if (err instanceof ApiError) sendError(res, err.code, err.message);
      else sendError(res, 500, `sheets fake: ${(err as Error).message}`);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const cellOf = (ref: string) => {
    const m = /^([A-Za-z]+)(\d+)$/.exec(ref);
    if (!m) throw new Error(`sheets fake: "${ref}" is not a cell reference`);
    return { r: Number(m[2]) - 1, c: columnIndex(m[1]!) };
  };

  return {
    url: `http://127.0.0.1:${port}/`,
    tokenUrl: `http://127.0.0.1:${port}/token`,
    spreadsheetId,
    get writeCalls() { return counters.writeCalls; },
    get readCalls() { return counters.readCalls; },
    get requests() { return counters.requests; },
    grid: (title) => {
      const tab = mustTab(title);
      return readArea({ tab, r0: 0, r1: tab.rowCount, c0: 0, c1: tab.columnCount }, (v) => v ?? null) as CellValue[][];
    },
    setCell: (title, ref, value) => {
      const { r, c } = cellOf(ref);
      store(mustTab(title), r, c, value === null || value === '' ? undefined : value);
    },
    note: (title, ref) => {
      const { r, c } = cellOf(ref);
      return mustTab(title).notes.get(`${r},${c}`);
    },
    hiddenColumns: (title) => [...mustTab(title).hidden].sort((a, b) => a - b),
    protectedRanges: (title) => structuredClone(mustTab(title).protectedRanges),
    deleteTab: (title) => {
      tabs = tabs.filter((t) => t !== mustTab(title));
    },
    failNext: (n, status, retryAfterSeconds) => {
      Object.assign(faults, { failNext: n, failStatus: status, failRetryAfter: retryAfterSeconds });
    },
    failAll: (status, retryAfterSeconds) => {
      Object.assign(faults, { failNext: Number.POSITIVE_INFINITY, failStatus: status, failRetryAfter: retryAfterSeconds });
    },
    rejectEvery: (k, status = 429, retryAfterSeconds = 1) => {
      Object.assign(faults, { every: k, everyStatus: status, everyRetryAfter: retryAfterSeconds, seen: 0 });
    },
    delay: (ms) => {
      faults.delayMs = ms;
    },
    resetFaults: () => {
      faults = { ...faults, failNext: 0, every: 0, delayMs: 0 };
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    }),
  };
}
