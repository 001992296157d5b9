/**
 * The Excel Online adapter through the real Graph client against the in-process Graph fake
 * (test/fakes/graph-fake.ts): sessions, layout, literal values, batching, notes and error translation.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGraphFake, type GraphFake } from '../../test/fakes/graph-fake.ts';
import { ProviderError, type SheetTarget, type TabSpec } from '../sheet-sync/sheet-target.ts';
import { createClientCredentialsAuth } from './graph-auth.ts';
import { createExcelGraphTarget, mergeRangeWrites, NOTES_SHEET } from './graph-target.ts';

const HEADER = ['sku', 'name', 'location', 'counted', 'on_hand', 'reserved', 'available', 'expiry', 'updated', 'id', 'version', 'hash'];
const STOCK: TabSpec = { title: 'Stock', header: HEADER, firstHiddenColumn: 9, editableColumns: [3] };
const ORDERS: TabSpec = { title: 'Open orders', header: ['order', 'sku', 'qty', 'status', 'id'], firstHiddenColumn: 4, editableColumns: [2, 3] };

let fake: GraphFake;
let target: SheetTarget;
let now: number;

function connect(secret = fake.clientSecret): SheetTarget {
  const auth = createClientCredentialsAuth({
    tenantId: fake.tenantId,
    clientId: fake.clientId,
    clientSecret: secret,
    authorityHost: fake.authorityHost,
  });
  return createExcelGraphTarget({ driveId: fake.driveId, itemId: fake.itemId, auth, baseUrl: fake.baseUrl, clock: () => now });
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

beforeEach(async () => {
  now = Date.now();
  fake = await startGraphFake({ clock: () => now });
  target = connect();
});
afterEach(async () => {
  await target.close();
  await fake.close();
});

describe('excel-graph target', () => {
  it('fetches the token once and reuses it for every call', async () => {
    await target.ensureLayout([STOCK]);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1', 'Bolt']] }], []);
    await target.read(['Stock']);
    expect(fake.tokensIssued).toBe(1);
  });

  it('creates missing tabs with header, hidden columns, unlocked editable columns and protection', async () => {
    await target.ensureLayout([STOCK, ORDERS]);
    expect(fake.sheetNames()).toEqual(expect.arrayContaining(['Stock', 'Open orders', NOTES_SHEET]));
    expect(fake.grid('Stock')[0]).toEqual(HEADER);
    expect(fake.hiddenColumns('Stock')).toEqual([9, 10, 11]);
    expect(fake.hiddenColumns('Open orders')).toEqual([4]);
    expect(fake.isProtected('Stock')).toBe(true);
    expect(fake.isLocked('Stock', 'D2')).toBe(false);
    expect(fake.isLocked('Stock', 'D900')).toBe(false);
    expect(fake.isLocked('Stock', 'D1')).toBe(true); // header
    expect(fake.isLocked('Stock', 'A2')).toBe(true);
    expect(fake.isLocked('Open orders', 'C5')).toBe(false);
    expect(fake.isLocked('Open orders', 'D5')).toBe(false);
    expect(fake.isLocked('Open orders', 'E5')).toBe(true);
    expect(fake.isProtected(NOTES_SHEET)).toBe(false);
  });

  it('leaves an already laid-out workbook alone on the next ensureLayout (also from a new process)', async () => {
    await target.ensureLayout([STOCK]);
    const writes = fake.writeCalls;
    await target.ensureLayout([STOCK]);
    const other = connect();
    await other.ensureLayout([STOCK]);
    await other.close();
    expect(fake.writeCalls).toBe(writes);
    expect(fake.isProtected('Stock')).toBe(true);
    expect(fake.grid('Stock')[0]).toEqual(HEADER);
  });

  it('round-trips values and keeps strings that look like formulas or numbers as literal text', async () => {
    await target.ensureLayout([STOCK]);
    const row = ['=HYPERLINK("http://x","y")', '00123', '-5 units', 7, true, '+1', "'quoted", 'TRUE', '', null, 'id-1', 3];
    await target.write([{ tab: 'Stock', startRow: 2, rows: [row] }], []);
    const grid = (await target.read(['Stock'])).get('Stock')!;
    expect(grid[1]).toEqual(['=HYPERLINK("http://x","y")', '00123', '-5 units', 7, true, '+1', "'quoted", 'TRUE', null, null, 'id-1', 3]);
    expect(fake.formula('Stock', 'A2')).toBeUndefined();
    expect(fake.isProtected('Stock')).toBe(true); // unprotected for the write, protected again after
  });

  it('leaves cells written as null unchanged, so a person’s edit survives', async () => {
    await target.ensureLayout([STOCK]);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1', 'Bolt', 'BIN-1', null, 10]] }], []);
    fake.setCell('Stock', 'D2', 8);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1', 'Bolt M6', null, null, 11]] }], []);
    expect(fake.grid('Stock')[1]?.slice(0, 5)).toEqual(['A-1', 'Bolt M6', 'BIN-1', 8, 11]);
  });

  it('shows a person’s edit in the next read', async () => {
    await target.ensureLayout([STOCK]);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1', 'Bolt']] }], []);
    fake.setCell('Stock', 'D2', 'recount');
    const grid = (await target.read(['Stock'])).get('Stock')!;
    expect(grid[1]?.[3]).toBe('recount');
  });

  it('reads values from row 1 and column A even when the used range starts further in', async () => {
    fake.setCell('Sheet1', 'C3', 'x');
    const grids = await target.read(['Sheet1', 'Missing']);
    expect(grids.get('Sheet1')).toEqual([[], [], [null, null, 'x']]);
    expect(grids.has('Missing')).toBe(false);
  });

  it('reads all tabs in one call', async () => {
    await target.ensureLayout([STOCK, ORDERS]);
    const reads = fake.readCalls;
    const grids = await target.read(['Stock', 'Open orders']);
    expect([...grids.keys()]).toEqual(['Stock', 'Open orders']);
    expect(fake.readCalls).toBe(reads + 1);
  });

  it('writes notes to the Sync notes sheet and removes them when the text is null', async () => {
    await target.ensureLayout([STOCK]);
    await target.write([], [
      { tab: 'Stock', row: 2, column: 3, text: '=not a formula: count differs' },
      { tab: 'Stock', row: 3, column: 3, text: 'second' },
    ]);
    expect(fake.notes().map(({ tab, cell, note }) => ({ tab, cell, note }))).toEqual([
      { tab: 'Stock', cell: 'D2', note: '=not a formula: count differs' },
      { tab: 'Stock', cell: 'D3', note: 'second' },
    ]);
    await target.write([], [{ tab: 'Stock', row: 2, column: 3, text: null }, { tab: 'Stock', row: 3, column: 3, text: 'changed' }]);
    expect(fake.notes().map((n) => [n.cell, n.note])).toEqual([['D3', 'changed']]);
    // a new process finds the existing rows instead of adding duplicates
    const other = connect();
    await other.write([], [{ tab: 'Stock', row: 3, column: 3, text: 'again' }]);
    await other.close();
    expect(fake.notes().map((n) => [n.cell, n.note])).toEqual([['D3', 'again']]);
  });

  it('sends a flush of many ranges and notes as one $batch call', async () => {
    await target.ensureLayout([STOCK]);
    const writes = fake.writeCalls;
    const ranges = Array.from({ length: 15 }, (_, i) => ({ tab: 'Stock', startRow: 2 + i * 2, rows: [[`S-${i}`, 'x', 'BIN', null, i]] }));
    await target.write(ranges, [{ tab: 'Stock', row: 2, column: 3, text: 'check' }]);
    expect(fake.writeCalls).toBe(writes + 1);
    expect(fake.grid('Stock')[29]?.[0]).toBe('S-14'); // row 30
  });

  it('splits more than 20 requests into as few $batch calls as the limit allows', async () => {
    await target.ensureLayout([STOCK]);
    const writes = fake.writeCalls;
    const notes = Array.from({ length: 30 }, (_, i) => ({ tab: 'Stock', row: 2 + i, column: 3, text: `n${i}` }));
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1']] }], notes);
    expect(fake.writeCalls).toBe(writes + 2); // unprotect + 1 range + 30 note rows + protect = 33 requests
    expect(fake.notes()).toHaveLength(30);
    expect(fake.isProtected('Stock')).toBe(true);
  });

  it('merges scattered ranges of a tab into one null-padded rectangle, later writes winning', () => {
    const merged = mergeRangeWrites([
      { tab: 'Stock', startRow: 5, rows: [['a', 'b', 'c']] },
      { tab: 'Orders', startRow: 2, rows: [['o']] },
      { tab: 'Stock', startRow: 2, rows: [['x'], [null, 'y']] },
      { tab: 'Stock', startRow: 5, rows: [[null, 'B']] },
    ]);
    expect(merged).toEqual([
      { tab: 'Orders', startRow: 2, rows: [['o']] },
      { tab: 'Stock', startRow: 2, rows: [['x', null, null], [null, 'y', null], [null, null, null], ['a', 'B', 'c']] },
    ]);
    const capped = mergeRangeWrites([{ tab: 'S', startRow: 2, rows: [['a', 'b']] }, { tab: 'S', startRow: 100, rows: [['c', 'd']] }], 100);
    expect(capped.map((r) => r.startRow)).toEqual([2, 100]);
  });

  it('re-creates an expired session transparently', async () => {
    await target.ensureLayout([STOCK]);
    expect(fake.sessionsCreated).toBe(1);
    fake.expireSessions();
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1']] }], []);
    fake.expireSessions();
    expect((await target.read(['Stock'])).get('Stock')?.[1]?.[0]).toBe('A-1');
    expect(fake.sessionsCreated).toBe(3);
  });

  it('refreshes a session idle for over four minutes, and replaces one Graph already dropped', async () => {
    await target.read(['Sheet1']);
    now += 4.5 * 60_000;
    await target.read(['Sheet1']);
    expect(fake.sessionRefreshes).toBe(1);
    expect(fake.sessionsCreated).toBe(1);
    now += 6 * 60_000; // past Graph's ~5 minute idle limit
    await target.read(['Sheet1']);
    expect(fake.sessionsCreated).toBe(2);
  });

  it('turns a 429 inside a $batch into ProviderError with status 429 and Retry-After', async () => {
    await target.ensureLayout([STOCK]);
    fake.failNext(1, 429, 7);
    const err = await failure(target.read(['Stock']));
    expect(err.status).toBe(429);
    expect(err.retryAfterMs).toBe(7000);
    expect(err.retryable).toBe(true);
  });

  it('turns a throttled single call into ProviderError, once per call (no retries in the client)', async () => {
    fake.rejectEvery(1, 429, 2);
    const err = await failure(target.ensureLayout([STOCK]));
    expect(err).toMatchObject({ status: 429, retryAfterMs: 2000 });
    expect(fake.operations).toBe(1); // createSession, sent once
    fake.rejectEvery(0);
    await target.ensureLayout([STOCK]);
    expect(fake.isProtected('Stock')).toBe(true);
  });

  it('reports a 503 as retryable', async () => {
    await target.ensureLayout([STOCK]);
    fake.failNext(1, 503);
    const err = await failure(target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1']] }], []));
    expect(err.status).toBe(503);
    expect(err.retryable).toBe(true);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1']] }], []);
    expect(fake.isProtected('Stock')).toBe(true);
  });

  it('protects a tab again that an interrupted write left unprotected', async () => {
    await target.ensureLayout([STOCK]);
    fake.rejectEvery(fake.operations + 2, 503); // the write's first PATCH, right after the unprotect
    await failure(target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1']] }], []));
    fake.rejectEvery(0);
    expect(fake.isProtected('Stock')).toBe(false);
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['A-1']] }], []);
    expect(fake.isProtected('Stock')).toBe(true);
    expect(fake.grid('Stock')[1]?.[0]).toBe('A-1');
  });

  it('reports a bad client secret as a non-retryable ProviderError', async () => {
    const bad = connect('wrong');
    const err = await failure(bad.read(['Stock']));
    expect(err.status).toBe(401);
    expect(err.retryable).toBe(false);
  });

  it('reports an unreachable Graph as status 0', async () => {
    await target.read(['Sheet1']);
    await fake.close();
    const err = await failure(target.read(['Sheet1']));
    expect(err.status).toBe(0);
    expect(err.retryable).toBe(true);
    fake = await startGraphFake(); // so afterEach has one to close
  });
});
