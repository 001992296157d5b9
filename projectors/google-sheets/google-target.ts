/**
 * The Google Sheets mirror: a SheetTarget over the Sheets v4 REST API (`@googleapis/sheets`). Every value is
 * written with valueInputOption RAW, so a string such as "=SUM(A1)" stays a literal string, and `null` cells
 * are sent as JSON null, which the API skips (the cell keeps what a person typed). A read is one
 * values.batchGet, a write one values.batchUpdate (plus one batchUpdate for notes or to grow the grid).
 *
 * Failures leave this module only as ProviderError. The client's own retry is switched off: the engine owns
 * retries and backoff, so a 429 reaches it exactly once per call. The one exception is a read naming a tab
 * that a person deleted since the tab list was cached: that is a stale cache, not a failed call, so the list
 * is fetched again and the read re-issued once.
 */
import { readFileSync } from 'node:fs';
import { sheets, type sheets_v4 } from '@googleapis/sheets';
import { JWT, OAuth2Client, type GoogleAuth } from 'google-auth-library';
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

export const SHEETS_SCOPE = 'https://www.googleapis.com/auth/spreadsheets';
export const PROTECTION_DESCRIPTION = 'stockwire: managed by sync';
/**
 * Limits of one values.batchUpdate. Google advises request bodies of at most ~2 MB and answers large
 * requests slowly; 10,000 rows of a dozen short cells stay near that, and 500 ranges keep the response
 * small. Larger writes go in several calls, one after another. They are not atomic together, but every
 * call writes absolute values, so the engine re-running a partly applied write is harmless.
 */
export const MAX_RANGES_PER_CALL = 500;
export const MAX_ROWS_PER_CALL = 10_000;
/** At most this many requests (notes, grid growth) in one spreadsheets.batchUpdate. */
export const MAX_REQUESTS_PER_CALL = 500;

const NEW_TAB_ROWS = 1000; // Google's default for a new sheet
const NEW_TAB_MIN_COLUMNS = 26;

/** What the adapter remembers about a tab between calls. */
interface TabInfo {
  sheetId: number;
  rowCount: number;
  columnCount: number;
  protectedBySync: boolean;
}

export interface GoogleSheetsTargetProps {
  spreadsheetId: string;
  /** a google-auth-library client: JWT (service account), OAuth2Client (refresh token) or GoogleAuth */
  auth: OAuth2Client | GoogleAuth;
  /** API root, e.g. a local fake's http://127.0.0.1:PORT/; defaults to https://sheets.googleapis.com/ */
  rootUrl?: string;
  /** per-call timeout; a call that takes longer fails with a retryable ProviderError (status 0) */
  timeoutMs?: number;
  log?: Logger;
}

/** Creates the Google Sheets SheetTarget (kind "google-sheets"). */
export function createGoogleSheetsTarget(props: GoogleSheetsTargetProps): SheetTarget {
  const { spreadsheetId } = props;
  const log = props.log?.child({ component: 'google-sheets' });
  const api = sheets({
    version: 'v4',
    auth: props.auth,
    ...(props.rootUrl ? { rootUrl: props.rootUrl } : {}),
    retry: false, // googleapis-common retries by default; the engine must see every 429
    timeout: props.timeoutMs ?? 60_000,
  });
  let known: Map<string, TabInfo> | undefined;

  async function loadTabs(): Promise<Map<string, TabInfo>> {
    const data = await call('spreadsheets.get', () =>
      api.spreadsheets.get({ spreadsheetId, fields: 'sheets.properties,sheets.protectedRanges' }),
    );
    known = new Map(
      (data.sheets ?? []).map((sheet) => [
        sheet.properties?.title ?? '',
        {
          sheetId: sheet.properties?.sheetId ?? 0,
          rowCount: sheet.properties?.gridProperties?.rowCount ?? 0,
          columnCount: sheet.properties?.gridProperties?.columnCount ?? 0,
          protectedBySync: (sheet.protectedRanges ?? []).some((p) => p.description === PROTECTION_DESCRIPTION),
        },
      ]),
    );
    return known;
  }

  async function tabInfo(title: string): Promise<TabInfo> {
    const info = (known ?? (await loadTabs())).get(title) ?? (await loadTabs()).get(title);
    if (!info) throw new ProviderError(`Google Sheets has no tab "${title}"; ensureLayout creates it`, 400);
    return info;
  }

  async function batchGet(titles: string[]) {
    const data = await call('values.batchGet', () =>
      api.spreadsheets.values.batchGet({
        spreadsheetId,
        ranges: titles.map(quoteTitle),
        valueRenderOption: 'UNFORMATTED_VALUE',
        majorDimension: 'ROWS',
      }),
    );
    return data.valueRanges ?? [];
  }

  return {
    kind: 'google-sheets',
    readBeforeWrite: false,

    async ensureLayout(specs) {
      const tabs = await loadTabs();
      const used = new Set([...tabs.values()].map((t) => t.sheetId));
      const requests: sheets_v4.Schema$Request[] = [];
      const created = new Map<string, TabInfo>();
      for (const spec of specs) {
        let info = tabs.get(spec.title);
        if (!info) {
          const columnCount = Math.max(NEW_TAB_MIN_COLUMNS, spec.header.length);
          info = { sheetId: freshSheetId(used), rowCount: NEW_TAB_ROWS, columnCount, protectedBySync: false };
          requests.push(...newTabRequests(spec, info));
          created.set(spec.title, info);
        }
        if (!info.protectedBySync) requests.push(...protectionRequests(spec, info.sheetId));
      }
      if (requests.length === 0) return;
      await call('spreadsheets.batchUpdate (layout)', () =>
        api.spreadsheets.batchUpdate({ spreadsheetId, requestBody: { requests } }),
      );
      for (const [title, info] of created) tabs.set(title, info);
      for (const spec of specs) tabs.get(spec.title)!.protectedBySync = true;
      log?.info({ created: [...created.keys()], requests: requests.length }, 'sheet layout ensured');
    },

    async read(titles) {
      const result = new Map<string, CellValue[][]>();
      const cached = known;
      let tabs = cached ?? (await loadTabs());
      if (cached && titles.some((t) => !tabs.has(t))) tabs = await loadTabs(); // created elsewhere since?
      let present = titles.filter((t) => tabs.has(t));
      if (present.length === 0) return result;
      let valueRanges;
      try {
        valueRanges = await batchGet(present);
      } catch (err) {
        if (!(err instanceof ProviderError && err.status === 400 && /Unable to parse range/.test(err.message))) throw err;
        tabs = await loadTabs(); // a tab vanished since the list was cached
        present = present.filter((t) => tabs.has(t));
        valueRanges = present.length ? await batchGet(present) : [];
      }
      present.forEach((title, i) => {
        const range = valueRanges[i];
        const grid = gridSize(range?.range);
        const info = known?.get(title);
        if (info && grid) Object.assign(info, grid); // the answer names the grid's extent: keep it fresh for writes
        result.set(title, (range?.values ?? []).map((row) => row.map(toCellValue)));
      });
      return result;
    },

    async write(ranges, notes) {
      if (ranges.length === 0 && notes.length === 0) return;
      const infos = new Map<string, TabInfo>();
      for (const title of new Set([...ranges.map((r) => r.tab), ...notes.map((n) => n.tab)])) {
        infos.set(title, await tabInfo(title));
      }
      const growth = growthRequests(ranges, notes, infos);
      const noteRequests = notes.map((note) => noteRequest(note, infos.get(note.tab)!.sheetId));
      for (const requests of chunk([...growth.requests, ...noteRequests], MAX_REQUESTS_PER_CALL)) {
        await call('spreadsheets.batchUpdate (notes)', () =>
          api.spreadsheets.batchUpdate({ spreadsheetId, requestBody: { requests } }),
        );
      }
      growth.apply();
      const calls = valueCalls(ranges);
      for (const data of calls) {
        await call('values.batchUpdate', () =>
          api.spreadsheets.values.batchUpdate({ spreadsheetId, requestBody: { valueInputOption: 'RAW', data } }),
        );
      }
      log?.debug({ ranges: ranges.length, notes: notes.length, calls: calls.length }, 'sheet written');
    },

    async close() {
      known = undefined;
    },
  };
}

/** Runs one API call and translates its failure into a ProviderError. */
async function call<T>(what: string, run: () => Promise<{ data: T }>): Promise<T> {
  try {
    return (await run()).data;
  } catch (err) {
    throw toProviderError(err, what);
  }
}

const HINTS: Record<number, string> = {
  401: 'the Google credentials were rejected; check GOOGLE_SERVICE_ACCOUNT_JSON or the OAuth refresh token',
  403: 'share the spreadsheet (as editor) with the service account or OAuth user, and enable the Sheets API',
  404: 'no spreadsheet with this id; check the configured spreadsheet id',
};

/** Translates a gaxios error (HTTP answer, timeout or network failure) into a ProviderError. */
export function toProviderError(err: unknown, what: string): ProviderError {
  const e = err as {
    message?: string;
    code?: string | number;
    response?: {
      status?: number;
      headers?: { get?: (name: string) => string | null } & Record<string, unknown>;
      data?: { error?: { message?: string } };
    };
  };
  const status = e.response?.status ?? 0;
  const headers = e.response?.headers;
  // gaxios 7 answers with fetch Headers (possibly another realm's class), older versions with a plain object
  const retryAfter = typeof headers?.get === 'function' ? headers.get('retry-after') : (headers?.['retry-after'] as string | undefined);
  const detail = e.response?.data?.error?.message ?? e.message ?? String(err);
  const hint = HINTS[status] ? ` (${HINTS[status]})` : '';
  const message = `Google Sheets ${what} failed with ${status || e.code || 'a network error'}: ${detail}${hint}`;
  const error = new ProviderError(message, status, retryAfterMs(retryAfter));
  error.cause = err;
  return error;
}

/** A tab title in A1 notation: always quoted, with ' doubled. */
export function quoteTitle(title: string): string {
  return `'${title.replaceAll("'", "''")}'`;
}

/** Spreadsheet column letters of a 0-based index: 0 → A, 26 → AA. */
// "Tab!A1:Z1000" → the grid is 1000 rows by 26 columns (a whole-tab read is answered with the tab's extent)
function gridSize(range: string | null | undefined): { rowCount: number; columnCount: number } | undefined {
  const m = /!A1:([A-Z]+)(\d+)$/.exec(range ?? '');
  if (!m) return undefined;
  const columnCount = [...m[1]!].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0);
  return { rowCount: Number(m[2]), columnCount };
}

// the API answers an empty cell between filled ones as ""
function toCellValue(value: unknown): CellValue {
  if (value === '' || value === null || value === undefined) return null;
  return typeof value === 'number' || typeof value === 'boolean' ? value : String(value);
}

function freshSheetId(used: Set<number>): number {
  let id: number;
  do id = 1 + Math.floor(Math.random() * 2_000_000_000);
  while (used.has(id));
  used.add(id);
  return id;
}

// addSheet with our own sheetId, so the same batchUpdate can write the header and hide columns
function newTabRequests(spec: TabSpec, info: TabInfo): sheets_v4.Schema$Request[] {
  const { sheetId } = info;
  const requests: sheets_v4.Schema$Request[] = [
    {
      addSheet: {
        properties: { sheetId, title: spec.title, gridProperties: { rowCount: info.rowCount, columnCount: info.columnCount, frozenRowCount: 1 } },
      },
    },
    {
      updateCells: {
        start: { sheetId, rowIndex: 0, columnIndex: 0 },
        rows: [{ values: spec.header.map((text) => ({ userEnteredValue: { stringValue: text } })) }],
        fields: 'userEnteredValue',
      },
    },
  ];
  if (spec.firstHiddenColumn < spec.header.length) {
    requests.push({
      updateDimensionProperties: {
        range: { sheetId, dimension: 'COLUMNS', startIndex: spec.firstHiddenColumn, endIndex: spec.header.length },
        properties: { hiddenByUser: true },
        fields: 'hiddenByUser',
      },
    });
  }
  return requests;
}

// the header row, and below it every run of non-editable columns (the last run open to the right edge)
function protectionRequests(spec: TabSpec, sheetId: number): sheets_v4.Schema$Request[] {
  const ranges: sheets_v4.Schema$GridRange[] = [{ sheetId, startRowIndex: 0, endRowIndex: 1 }];
  const editable = new Set(spec.editableColumns);
  let runStart: number | undefined;
  for (let c = 0; c <= spec.header.length; c++) {
    const locked = c < spec.header.length && !editable.has(c);
    if (locked && runStart === undefined) runStart = c;
    if (!locked && runStart !== undefined) {
      ranges.push({ sheetId, startRowIndex: 1, startColumnIndex: runStart, ...(c < spec.header.length ? { endColumnIndex: c } : {}) });
      runStart = undefined;
    }
  }
  return ranges.map((range) => ({
    addProtectedRange: { protectedRange: { range, description: PROTECTION_DESCRIPTION, warningOnly: false } },
  }));
}

function noteRequest(note: CellNote, sheetId: number): sheets_v4.Schema$Request {
  return {
    updateCells: {
      range: { sheetId, startRowIndex: note.row - 1, endRowIndex: note.row, startColumnIndex: note.column, endColumnIndex: note.column + 1 },
      rows: [{ values: [note.text === null ? {} : { note: note.text }] }], // no note under fields "note" clears it
      fields: 'note',
    },
  };
}

// The API refuses to write outside a tab's grid, so a write reaching past it first appends rows/columns.
function growthRequests(ranges: RangeWrite[], notes: CellNote[], infos: Map<string, TabInfo>) {
  const needed = new Map<string, { rows: number; columns: number }>();
  const need = (tab: string, rows: number, columns: number) => {
    const n = needed.get(tab) ?? { rows: 0, columns: 0 };
    needed.set(tab, { rows: Math.max(n.rows, rows), columns: Math.max(n.columns, columns) });
  };
  for (const r of ranges) need(r.tab, r.startRow + r.rows.length - 1, Math.max(0, ...r.rows.map((row) => row.length)));
  for (const n of notes) need(n.tab, n.row, n.column + 1);
  const requests: sheets_v4.Schema$Request[] = [];
  for (const [tab, n] of needed) {
    const { sheetId, rowCount, columnCount } = infos.get(tab)!;
    if (n.rows > rowCount) requests.push({ appendDimension: { sheetId, dimension: 'ROWS', length: n.rows - rowCount } });
    if (n.columns > columnCount) requests.push({ appendDimension: { sheetId, dimension: 'COLUMNS', length: n.columns - columnCount } });
  }
  const apply = () => {
    for (const [tab, n] of needed) {
      const info = infos.get(tab)!;
      info.rowCount = Math.max(info.rowCount, n.rows);
      info.columnCount = Math.max(info.columnCount, n.columns);
    }
  };
  return { requests, apply };
}

/** Splits the writes into values.batchUpdate bodies of at most MAX_RANGES_PER_CALL ranges and MAX_ROWS_PER_CALL rows. */
export function valueCalls(ranges: RangeWrite[]): sheets_v4.Schema$ValueRange[][] {
  const calls: sheets_v4.Schema$ValueRange[][] = [];
  let current: sheets_v4.Schema$ValueRange[] = [];
  let rows = 0;
  for (const write of ranges) {
    for (let offset = 0; offset < write.rows.length; offset += MAX_ROWS_PER_CALL) {
      const values = write.rows.slice(offset, offset + MAX_ROWS_PER_CALL);
      if (current.length === MAX_RANGES_PER_CALL || rows + values.length > MAX_ROWS_PER_CALL) {
        calls.push(current);
        [current, rows] = [[], 0];
      }
      const first = write.startRow + offset;
      const width = Math.max(1, ...values.map((row) => row.length));
      const range = `${quoteTitle(write.tab)}!A${first}:${columnLetter(width - 1)}${first + values.length - 1}`;
      current.push({ range, majorDimension: 'ROWS', values });
      rows += values.length;
    }
  }
  if (current.length) calls.push(current);
  return calls;
}

function chunk<T>(items: T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

export interface GoogleAuthEnv {
  /** a service-account JSON key, or the path to one */
  GOOGLE_SERVICE_ACCOUNT_JSON?: string;
  GOOGLE_OAUTH_CLIENT_ID?: string;
  GOOGLE_OAUTH_CLIENT_SECRET?: string;
  GOOGLE_OAUTH_REFRESH_TOKEN?: string;
  /** token endpoint for the OAuth refresh-token flow (the service-account flow always uses Google's) */
  GOOGLE_TOKEN_URL?: string;
}

/** Builds the Google auth client from the environment: a service-account JWT, else an OAuth2 refresh-token client. */
export function googleAuthFromEnv(env: GoogleAuthEnv): JWT | OAuth2Client {
  const serviceAccount = env.GOOGLE_SERVICE_ACCOUNT_JSON?.trim();
  if (serviceAccount) {
    const key = parseServiceAccountKey(serviceAccount);
    return new JWT({ email: key.client_email, key: key.private_key, keyId: key.private_key_id, scopes: [SHEETS_SCOPE] });
  }
  const oauth = {
    GOOGLE_OAUTH_CLIENT_ID: env.GOOGLE_OAUTH_CLIENT_ID,
    GOOGLE_OAUTH_CLIENT_SECRET: env.GOOGLE_OAUTH_CLIENT_SECRET,
    GOOGLE_OAUTH_REFRESH_TOKEN: env.GOOGLE_OAUTH_REFRESH_TOKEN,
  };
  const missing = Object.entries(oauth).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length === 3) {
    throw new Error(
      'Google Sheets needs credentials: set GOOGLE_SERVICE_ACCOUNT_JSON (a service-account key or the path to one, ' +
        'with the spreadsheet shared to its client_email) or GOOGLE_OAUTH_CLIENT_ID, GOOGLE_OAUTH_CLIENT_SECRET and GOOGLE_OAUTH_REFRESH_TOKEN',
    );
  }
  if (missing.length) throw new Error(`Google Sheets OAuth is configured only in part: set ${missing.join(', ')} as well`);
  const client = new OAuth2Client({
    clientId: oauth.GOOGLE_OAUTH_CLIENT_ID,
    clientSecret: oauth.GOOGLE_OAUTH_CLIENT_SECRET,
    ...(env.GOOGLE_TOKEN_URL ? { endpoints: { oauth2TokenUrl: env.GOOGLE_TOKEN_URL } } : {}),
  });
  client.setCredentials({ refresh_token: oauth.GOOGLE_OAUTH_REFRESH_TOKEN });
  return client;
}

function parseServiceAccountKey(value: string): { client_email: string; private_key: string; private_key_id?: string } {
  let text = value;
  if (!value.startsWith('{')) {
    try {
      text = readFileSync(value, 'utf8');
    } catch (err) {
      throw new Error(`GOOGLE_SERVICE_ACCOUNT_JSON is neither a JSON key nor a readable file (${(err as Error).message})`, { cause: err });
    }
  }
  let key: { client_email?: unknown; private_key?: unknown; private_key_id?: unknown };
  try {
    key = JSON.parse(text);
  } catch (err) {
    throw new Error('GOOGLE_SERVICE_ACCOUNT_JSON does not hold valid JSON; paste the key file downloaded from the Cloud console', { cause: err });
  }
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    throw new Error('GOOGLE_SERVICE_ACCOUNT_JSON is not a service-account key: client_email and private_key are missing');
  }
  const keyId = typeof key.private_key_id === 'string' ? key.private_key_id : undefined;
  return { client_email: key.client_email, private_key: key.private_key, private_key_id: keyId };
}
