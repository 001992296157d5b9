/**
 * An in-process fake of the parts of Microsoft Graph the Excel adapter speaks, over real HTTP
 * (node:http on 127.0.0.1, port 0), so tests exercise the real Graph client end to end.
 *
 * Implemented:
 * - identity platform: `POST /{tenant}/oauth2/v2.0/token` (form-encoded client_credentials; checks client
 *   id and secret; `{ token_type, expires_in, access_token }`); every `/v1.0` call needs `Bearer <issued token>`.
 * - `/v1.0/drives/{d}/items/{i}/workbook/`: createSession / refreshSession / closeSession (a session idle
 *   longer than `sessionIdleMs` is gone: 404 `InvalidSession` with inner code `invalidSessionReCreatable`,
 *   as in Graph's workbook error-code list); `worksheets` (list) and `worksheets/add`;
 *   `worksheets/{name}/range(address='…')` GET and PATCH (`values`, `columnHidden`; A1 cells, blocks and
 *   whole columns like `J:L`); `…/format/protection` PATCH (`locked`); `usedRange(valuesOnly=true)`;
 *   `protection` GET, `protection/protect`, `protection/unprotect`.
 * - `POST /v1.0/$batch` (JSON batching, at most 20 requests, relative urls, `dependsOn` → 424 when a
 *   dependency failed).
 * Excel semantics modelled: `null` in `values` leaves a cell unchanged; `''` clears it; a string is parsed
 * as typed input (`'…` is literal text, `=…` a formula, numeric text a number, TRUE/FALSE a boolean);
 * formulas are not evaluated and read back as `#NAME?`; writing locked cells (even with `null`) of a
 * protected sheet is 403 AccessDenied, and protecting a protected sheet fails the same way.
 * Not implemented: workbook comments (Graph v1.0 can only list them), tables, formats other than those above.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Raw = string | number | boolean;
interface Cell { value: Raw; formula?: string }
interface Rect { r1: number; c1: number; r2: number; c2: number }
interface Sheet { name: string; cells: Map<string, Cell>; hidden: Set<number>; unlocked: Rect[]; protected: boolean; options?: unknown }
interface Reply { status: number; body?: unknown; headers?: Record<string, string> }
class Fail extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly inner?: string) { super(message); }
}

const MAX_ROW = 1_048_576;
const MAX_COL = 16_384;

export interface GraphFakeOptions {
  tenantId?: string; clientId?: string; clientSecret?: string; driveId?: string; itemId?: string;
  /** idle time after which a workbook session is gone (Graph: about 5 minutes for persistent sessions) */
  sessionIdleMs?: number;
  tokenLifetimeSeconds?: number;
  /** the worksheet notes() reads (the adapter's fallback for cell notes) */
  notesSheet?: string;
  /** time source for session idleness (tests move it forward instead of waiting) */
  clock?: () => number;
  /** called synchronously after each call that wrote cell values (grid() already shows them); must not throw */
  onWrite?: (write: { at: number; writeCalls: number }) => void;
}

export type GraphFake = Awaited<ReturnType<typeof startGraphFake>>;

/** 0-based column index → letters (0 → A). */
export function columnName(c: number): string {
  let s = '';
  for (let n = c + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(65 + ((n - 1) % 26)) + s;
  return s;
}
function columnIndex(letters: string): number {
  return [...letters.toUpperCase()].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0) - 1;
}
/** Parses `A5:L7`, `J:L`, `D2`, `'Sheet x'!$A$1:$B$2` into a 0-based rectangle. */
export function parseA1(address: string): Rect {
  const ref = address.includes('!') ? address.slice(address.lastIndexOf('!') + 1) : address;
  const [a, b = a] = ref.replaceAll('$', '').split(':') as [string, string?];
  const end = (s: string, first: boolean) => {
    const m = /^([A-Za-z]*)(\d*)$/.exec(s);
    if (!m || (!m[1] && !m[2])) throw new Fail(400, 'InvalidArgument', `invalid address ${address}`);
    return { c: m[1] ? columnIndex(m[1]) : first ? 0 : MAX_COL - 1, r: m[2] ? Number(m[2]) - 1 : first ? 0 : MAX_ROW - 1 };
  };
  const p = end(a, true), q = end(b, false);
  return { r1: Math.min(p.r, q.r), c1: Math.min(p.c, q.c), r2: Math.max(p.r, q.r), c2: Math.max(p.c, q.c) };
}
const quoteSheet = (name: string) => (/^[A-Za-z0-9_]+$/.test(name) ? name : `'${name.replaceAll("'", "''")}'`);

/** Excel's reading of a value set through `values`, as if a person typed it. */
function parseInput(v: Raw): Cell | undefined {
  if (typeof v !== 'string') return { value: v };
  if (v === '') return undefined;
  if (v.startsWith("'")) return { value: v.slice(1) };
  if (/^[=+-]/.test(v) && Number.isNaN(Number(v))) return { value: '#NAME?', formula: v };
  if (v.trim() !== '' && !Number.isNaN(Number(v))) return { value: Number(v) };
  if (/^(true|false)$/i.test(v)) return { value: v.toLowerCase() === 'true' };
  return { value: v };
}

/** Starts the fake on a free loopback port. */
export async function startGraphFake(opts: GraphFakeOptions = {}) {
  const cfg = {
    tenantId: 'tenant-1', clientId: 'client-1', clientSecret: 'secret-1', driveId: 'drive-1', itemId: 'item-1',
    sessionIdleMs: 5 * 60_000, tokenLifetimeSeconds: 3600, notesSheet: 'Sync notes', clock: Date.now, ...opts,
  };
  const sheets = new Map<string, Sheet>([['Sheet1', newSheet('Sheet1')]]);
  const tokens = new Map<string, number>(); // token → expiry
  const sessions = new Map<string, number>(); // id → last use
  const stats = { writeCalls: 0, readCalls: 0, sessionsCreated: 0, sessionRefreshes: 0, tokensIssued: 0, operations: 0 };
  let failures: { n: number; status: number; retryAfter?: number } | undefined;
  let rejection: { k: number; status: number; retryAfter: number } | undefined;
  let delayMs = 0;

  function newSheet(name: string): Sheet {
    return { name, cells: new Map(), hidden: new Set(), unlocked: [], protected: false };
  }
  function sheet(name: string): Sheet {
    const s = sheets.get(name);
    if (!s) throw new Fail(404, 'ItemNotFound', `The requested resource doesn't exist: worksheet ${name}`);
    return s;
  }
  const isLocked = (s: Sheet, r: number, c: number) => !s.unlocked.some((u) => r >= u.r1 && r <= u.r2 && c >= u.c1 && c <= u.c2);
  function guardLocked(s: Sheet, rect: Rect) {
    if (!s.protected) return;
    for (let r = rect.r1; r <= Math.min(rect.r2, rect.r1 + 5000); r++)
      for (let c = rect.c1; c <= rect.c2; c++)
        if (isLocked(s, r, c)) throw new Fail(403, 'AccessDenied', 'You cannot perform the requested operation.');
  }
  function valuesOf(s: Sheet, rect: Rect): Raw[][] {
    return Array.from({ length: rect.r2 - rect.r1 + 1 }, (_, i) =>
      Array.from({ length: rect.c2 - rect.c1 + 1 }, (_, j) => s.cells.get(`${rect.r1 + i},${rect.c1 + j}`)?.value ?? ''));
  }
  function usedRect(s: Sheet): Rect | undefined {
    let rect: Rect | undefined;
    for (const key of s.cells.keys()) {
      const [r, c] = key.split(',').map(Number) as [number, number];
      rect = rect ? { r1: Math.min(rect.r1, r), c1: Math.min(rect.c1, c), r2: Math.max(rect.r2, r), c2: Math.max(rect.c2, c) } : { r1: r, c1: c, r2: r, c2: c };
    }
    return rect;
  }
  const address = (s: Sheet, q: Rect) =>
    `${quoteSheet(s.name)}!${columnName(q.c1)}${q.r1 + 1}${q.r1 === q.r2 && q.c1 === q.c2 ? '' : `:${columnName(q.c2)}${q.r2 + 1}`}`;
  function setValues(s: Sheet, rect: Rect, values: unknown) {
    const rows = rect.r2 - rect.r1 + 1, cols = rect.c2 - rect.c1 + 1;
    if (!Array.isArray(values) || values.length !== rows || values.some((row) => !Array.isArray(row) || row.length !== cols))
      throw new Fail(400, 'InvalidArgument', `values must be a ${rows}x${cols} array for this range`);
    guardLocked(s, rect);
    (values as (Raw | null)[][]).forEach((row, i) => row.forEach((v, j) => {
      if (v === null) return; // Graph: null leaves the cell as it is
      const key = `${rect.r1 + i},${rect.c1 + j}`, cell = parseInput(v);
      if (cell) s.cells.set(key, cell); else s.cells.delete(key);
    }));
  }

  /** One workbook operation (a top-level request, or one request inside a $batch). */
  function operation(method: string, path: string, headers: Record<string, string | undefined>, body: any, call: { read: boolean; wrote: boolean }): Reply {
    stats.operations++;
    if (failures && failures.n > 0) {
      failures.n--;
      return fault(failures.status, failures.retryAfter);
    }
    if (rejection && stats.operations % rejection.k === 0) return fault(rejection.status, rejection.retryAfter);
    const m = /^\/drives\/([^/]+)\/items\/([^/]+)\/workbook\/(.*)$/.exec(path.split('?')[0]!);
    if (!m || decodeURIComponent(m[1]!) !== cfg.driveId || decodeURIComponent(m[2]!) !== cfg.itemId)
      throw new Fail(404, 'itemNotFound', `no such item: ${path}`);
    const rest = m[3]!;
    const sessionId = headers['workbook-session-id'];
    if (rest === 'createSession' && method === 'POST') {
      const id = `session-${++stats.sessionsCreated}`;
      sessions.set(id, cfg.clock());
      return { status: 201, body: { id, persistChanges: body?.persistChanges !== false } };
    }
    if (sessionId !== undefined) {
      const last = sessions.get(sessionId);
      if (last === undefined || cfg.clock() - last > cfg.sessionIdleMs) {
        sessions.delete(sessionId);
        throw new Fail(404, 'InvalidSession', 'The session specified in the request does not exist or is invalid due to a transient error.', 'invalidSessionReCreatable');
      }
      sessions.set(sessionId, cfg.clock());
    }
    if (rest === 'refreshSession' && method === 'POST') {
      stats.sessionRefreshes++;
      return { status: 204 };
    }
    if (rest === 'closeSession' && method === 'POST') {
      if (sessionId) sessions.delete(sessionId);
      return { status: 204 };
    }
    if (rest === 'worksheets' && method === 'GET')
      return { status: 200, body: { value: [...sheets.values()].map((s, position) => ({ id: `{${s.name}}`, name: s.name, position, visibility: 'Visible' })) } };
    if (rest === 'worksheets/add' && method === 'POST') {
      const name = String(body?.name ?? `Sheet${sheets.size + 1}`);
      if (sheets.has(name)) throw new Fail(409, 'ItemAlreadyExists', `A worksheet named ${name} already exists.`);
      sheets.set(name, newSheet(name));
      return { status: 201, body: { id: `{${name}}`, name, position: sheets.size - 1, visibility: 'Visible' } };
    }
    const w = /^worksheets\/([^/]+)\/(.+)$/.exec(rest);
    if (!w) throw new Fail(400, 'BadRequest', `unsupported path ${rest}`);
    const s = sheet(decodeURIComponent(w[1]!));
    const tail = decodeURIComponent(w[2]!);
    if (/^usedRange(\(valuesOnly=true\))?$/.test(tail) && method === 'GET') {
      call.read = true;
      const rect = usedRect(s) ?? { r1: 0, c1: 0, r2: 0, c2: 0 };
      return { status: 200, body: { address: address(s, rect), values: valuesOf(s, rect) } };
    }
    if (tail === 'protection' && method === 'GET') return { status: 200, body: { protected: s.protected, options: s.options ?? {} } };
    if (tail === 'protection/protect' && method === 'POST') {
      if (s.protected) throw new Fail(403, 'AccessDenied', 'The worksheet is already protected.');
      s.protected = true;
      s.options = body?.options ?? {};
      return { status: 200 };
    }
    if (tail === 'protection/unprotect' && method === 'POST') {
      s.protected = false;
      return { status: 200 };
    }
    const r = /^range\(address='([^']+)'\)(\/format\/protection)?$/.exec(tail);
    if (!r) throw new Fail(400, 'BadRequest', `unsupported path ${tail}`);
    const rect = parseA1(r[1]!);
    if (r[2] && method === 'PATCH') {
      if (s.protected) throw new Fail(403, 'AccessDenied', 'You cannot perform the requested operation.');
      s.unlocked = s.unlocked.filter((u) => !(u.r1 >= rect.r1 && u.r2 <= rect.r2 && u.c1 >= rect.c1 && u.c2 <= rect.c2));
      if (body?.locked === false) s.unlocked.push(rect);
      return { status: 200, body: { locked: body?.locked !== false } };
    }
    if (method === 'PATCH') {
      if (body?.values !== undefined) {
        setValues(s, rect, body.values);
        call.wrote = true;
      }
      if (typeof body?.columnHidden === 'boolean') {
        if (s.protected) throw new Fail(403, 'AccessDenied', 'You cannot perform the requested operation.');
        for (let c = rect.c1; c <= rect.c2; c++) body.columnHidden ? s.hidden.add(c) : s.hidden.delete(c);
      }
      return { status: 200, body: { address: address(s, rect) } };
    }
    if (method === 'GET') {
      call.read = true;
      return { status: 200, body: { address: address(s, rect), values: valuesOf(s, rect) } };
    }
    throw new Fail(405, 'MethodNotAllowed', `${method} not allowed on ${tail}`);
  }
  function fault(status: number, retryAfter?: number): Reply {
    const code = status === 429 ? 'TooManyRequests' : status >= 500 ? 'ServiceUnavailable' : 'InvalidRequest';
    return { status, headers: retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) }, body: { error: { code, message: `injected ${status}` } } };
  }
  function safely(run: () => Reply): Reply {
    try {
      return run();
    } catch (err) {
      if (!(err instanceof Fail)) throw err;
      const inner = err.inner ? { code: err.inner, message: err.message } : undefined;
      return { status: err.status, body: { error: { code: err.code, message: err.message, innerError: inner } } };
    }
  }
  function batch(body: any, call: { read: boolean; wrote: boolean }): Reply {
    const requests: any[] = body?.requests;
    if (!Array.isArray(requests) || requests.length === 0 || requests.length > 20)
      throw new Fail(400, 'BadRequest', 'a batch holds between 1 and 20 requests');
    const statusById = new Map<string, number>();
    const responses = requests.map((req) => {
      const failedDep = (req.dependsOn ?? []).some((id: string) => (statusById.get(id) ?? 424) >= 400);
      const reply = failedDep
        ? { status: 424, body: { error: { code: 'FailedDependency', message: 'a request this one depends on failed' } } }
        : safely(() => operation(String(req.method).toUpperCase(), String(req.url).replace(/^\/?(v1\.0)?/, '/').replace(/^\/\//, '/'), lower(req.headers), req.body, call));
      statusById.set(String(req.id), reply.status);
      return { id: String(req.id), status: reply.status, headers: { 'Content-Type': 'application/json', ...reply.headers }, body: reply.body ?? null };
    });
    return { status: 200, body: { responses } };
  }
  const lower = (h: Record<string, string> = {}) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

  async function handle(req: http.IncomingMessage): Promise<Reply> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    if (req.method === 'POST' && url.pathname === `/${cfg.tenantId}/oauth2/v2.0/token`) {
      const form = new URLSearchParams(text);
      if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== cfg.clientId || form.get('client_secret') !== cfg.clientSecret)
        return { status: 401, body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' } };
      const token = `token-${++stats.tokensIssued}`;
      tokens.set(token, Date.now() + cfg.tokenLifetimeSeconds * 1000);
      return { status: 200, body: { token_type: 'Bearer', expires_in: cfg.tokenLifetimeSeconds, ext_expires_in: cfg.tokenLifetimeSeconds, access_token: token } };
    }
    if (!url.pathname.startsWith('/v1.0/')) return { status: 404, body: { error: { code: 'NotFound', message: url.pathname } } };
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || (tokens.get(token) ?? 0) < Date.now())
      return { status: 401, body: { error: { code: 'InvalidAuthenticationToken', message: 'Access token is empty or invalid.' } } };
    const body = text ? JSON.parse(text) : undefined;
    const call = { read: false, wrote: false };
    const path = url.pathname.slice('/v1.0'.length) + url.search;
    const reply = safely(() => (path === '/$batch' && req.method === 'POST' ? batch(body, call) : operation(req.method ?? 'GET', path, lower(req.headers as Record<string, string>), body, call)));
    if (call.read) stats.readCalls++;
    if (call.wrote) {
      stats.writeCalls++;
      cfg.onWrite?.({ at: Date.now(), writeCalls: stats.writeCalls });
    }
    return reply;
  }

  const server = http.createServer((req, res) => {
    handle(req)
      .then(async (reply) => {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        const payload = reply.body === undefined ? '' : JSON.stringify(reply.body);
        res.writeHead(reply.status, { ...(payload ? { 'Content-Type': 'application/json' } : {}), ...reply.headers });
        res.end(payload);
      })
      .catch((err) => {
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'InternalServerError', message: String(err) } }));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    ...cfg,
    /** give the Graph client this as `baseUrl` (it appends `/v1.0`) */
    baseUrl: origin,
    /** give the token provider this as `authorityHost` */
    authorityHost: origin,
    /** what `values` of the used range from A1 would show; empty cells as null */
    grid(tab: string): (Raw | null)[][] {
      const s = sheet(tab), used = usedRect(s);
      return used ? valuesOf(s, { r1: 0, c1: 0, r2: used.r2, c2: used.c2 }).map((row) => row.map((v) => (v === '' ? null : v))) : [];
    },
    /** a person's edit, typed into the cell (ignores protection, as the owner could unprotect) */
    setCell(tab: string, a1: string, value: Raw | null) {
      const { r1, c1 } = parseA1(a1), cell = value === null ? undefined : parseInput(value);
      if (cell) sheet(tab).cells.set(`${r1},${c1}`, cell); else sheet(tab).cells.delete(`${r1},${c1}`);
    },
    formula: (tab: string, a1: string) => { const { r1, c1 } = parseA1(a1); return sheet(tab).cells.get(`${r1},${c1}`)?.formula; },
    hiddenColumns: (tab: string) => [...sheet(tab).hidden].sort((a, b) => a - b),
    isProtected: (tab: string) => sheet(tab).protected,
    isLocked: (tab: string, a1: string) => { const { r1, c1 } = parseA1(a1); return isLocked(sheet(tab), r1, c1); },
    sheetNames: () => [...sheets.keys()],
    /** rows of the notes sheet: the adapter's stand-in for cell comments */
    notes() {
      if (!sheets.has(cfg.notesSheet)) return [];
      return this.grid(cfg.notesSheet).slice(1).filter((row) => row[0] !== null)
        .map(([tab, cell, note, at]) => ({ tab: String(tab), cell: String(cell), note: String(note), at: String(at) }));
    },
    get writeCalls() { return stats.writeCalls; },
    get readCalls() { return stats.readCalls; },
    get sessionsCreated() { return stats.sessionsCreated; },
    get sessionRefreshes() { return stats.sessionRefreshes; },
    /** workbook operations seen: top-level calls and each request inside a $batch */
    get operations() { return stats.operations; },
    get tokensIssued() { return stats.tokensIssued; },
    expireSessions: () => sessions.clear(),
    failNext(n: number, status: number, retryAfterSeconds?: number) { failures = { n, status, retryAfter: retryAfterSeconds }; },
    /** every workbook operation answers `status` (with Retry-After when given) until resetFaults() */
    failAll(status: number, retryAfterSeconds?: number) { failures = { n: Number.POSITIVE_INFINITY, status, retryAfter: retryAfterSeconds }; },
    rejectEvery(k: number, status = 429, retryAfterSeconds = 1) { rejection = k > 0 ? { k, status, retryAfter: retryAfterSeconds } : undefined; },
    delay(ms: number) { delayMs = ms; },
    /** ends failNext, rejectEvery and delay */
    resetFaults() { failures = undefined; rejection = undefined; delayMs = 0; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
