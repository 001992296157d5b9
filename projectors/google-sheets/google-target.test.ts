/**
 * The Google Sheets adapter driven through the real @googleapis/sheets client against the in-process
 * Sheets v4 fake: layout, raw round trips, notes, call counts, and how provider failures surface.
 */
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JWT, OAuth2Client } from 'google-auth-library';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSheetsFake, type SheetsFake } from '../../test/fakes/sheets-fake.ts';
import { ProviderError, type SheetTarget, type TabSpec } from '../sheet-sync/sheet-target.ts';
import { createGoogleSheetsTarget, googleAuthFromEnv, PROTECTION_DESCRIPTION } from './google-target.ts';

const HEADER = ['sku', 'location', 'name', 'on_hand', 'reserved', 'available', 'reorder_at', 'comment', '_key', '_version', '_hash', '_synced'];
const STOCK: TabSpec = { title: 'Stock', header: HEADER, firstHiddenColumn: 8, editableColumns: [6, 7] };
const ODD: TabSpec = { title: "Bob's stock", header: ['a', 'b'], firstHiddenColumn: 2, editableColumns: [1] };

function testAuth(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test', expiry_date: Date.now() + 3600e3 });
  return auth;
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

let fake: SheetsFake;
let target: SheetTarget;

beforeEach(async () => {
  fake = await startSheetsFake();
  target = createGoogleSheetsTarget({ spreadsheetId: fake.spreadsheetId, auth: testAuth(), rootUrl: fake.url, timeoutMs: 2000 });
});
afterEach(async () => {
  await target.close();
  await fake.close();
});

describe('ensureLayout', () => {
  it('creates missing tabs with header, hidden columns and protection in one write call', async () => {
    await target.ensureLayout([STOCK, ODD]);

    expect(fake.writeCalls).toBe(1);
    expect(fake.grid('Stock')).toEqual([HEADER]);
    expect(fake.grid("Bob's stock")).toEqual([['a', 'b']]);
    expect(fake.hiddenColumns('Stock')).toEqual([8, 9, 10, 11]);
    expect(fake.hiddenColumns("Bob's stock")).toEqual([]);
    const ranges = fake.protectedRanges('Stock');
    expect(ranges.every((p) => p.description === PROTECTION_DESCRIPTION && p.warningOnly === false)).toBe(true);
    expect(ranges.map(({ range: { sheetId, ...rest } }) => rest)).toEqual([
      { startRowIndex: 0, endRowIndex: 1 }, // header row
      { startRowIndex: 1, startColumnIndex: 0, endColumnIndex: 6 }, // up to the editable reorder_at, comment
      { startRowIndex: 1, startColumnIndex: 8 }, // hidden columns and everything right of them
    ]);
  });

  it('is idempotent: a second call adds nothing', async () => {
    await target.ensureLayout([STOCK, ODD]);
    const again = createGoogleSheetsTarget({ spreadsheetId: fake.spreadsheetId, auth: testAuth(), rootUrl: fake.url });
    await again.ensureLayout([STOCK, ODD]);
    await target.ensureLayout([STOCK]);

    expect(fake.writeCalls).toBe(1);
    expect(fake.protectedRanges('Stock')).toHaveLength(3);
  });

  it('adds only the tab that is missing', async () => {
    await target.ensureLayout([STOCK]);
    await target.ensureLayout([STOCK, ODD]);

    expect(fake.writeCalls).toBe(2);
    expect(fake.protectedRanges('Stock')).toHaveLength(3);
    expect(fake.protectedRanges("Bob's stock")).toHaveLength(2);
  });
});

describe('write and read', () => {
  beforeEach(() => target.ensureLayout([STOCK, ODD]));

  it('round-trips strings, numbers and booleans as raw values: "=…" stays a literal string', async () => {
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU-1', 'A1', '=SUM(D2:D3)', 12, 0, 12.5, true, '007']] }], []);

    const grid = (await target.read(['Stock'])).get('Stock');
    expect(grid).toEqual([HEADER, ['SKU-1', 'A1', '=SUM(D2:D3)', 12, 0, 12.5, true, '007']]);
  });

  it('leaves null cells as they are and clears cells written as ""', async () => {
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU-1', 'A1', 'Bolt', 5, 1, 4, 10, 'ok']] }], []);
    fake.setCell('Stock', 'H2', 'call supplier'); // a person's comment

    await target.write([{ tab: 'Stock', startRow: 2, rows: [[null, null, '', 6, null, 5, null, null]] }], []);

    expect(fake.grid('Stock')[1]).toEqual(['SKU-1', 'A1', null, 6, 1, 5, 10, 'call supplier']);
  });

  it('sees a person’s edit on the next read, with empty cells between as null', async () => {
    fake.setCell('Stock', 'G4', 25);
    fake.setCell('Stock', 'A3', 'SKU-9');

    const grid = (await target.read(['Stock'])).get('Stock');
    expect(grid).toEqual([HEADER, [], ['SKU-9'], [null, null, null, null, null, null, 25]]);
  });

  it('leaves tabs that do not exist out of the answer, including one deleted since the last call', async () => {
    fake.deleteTab("Bob's stock");

    const before = fake.readCalls;
    expect([...(await target.read(['Stock', "Bob's stock"])).keys()]).toEqual(['Stock']);
    expect(fake.readCalls - before).toBe(2); // the refused batchGet is not counted; the tab list, then the read
    expect([...(await target.read(['Stock', 'Nope'])).keys()]).toEqual(['Stock']);
  });

  it('sets and clears notes in one extra call', async () => {
    await target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU-1']] }], [{ tab: 'Stock', row: 2, column: 6, text: 'was 12, now 10' }]);
    expect(fake.note('Stock', 'G2')).toBe('was 12, now 10');
    expect(fake.writeCalls).toBe(3); // layout, notes, values

    await target.write([], [{ tab: 'Stock', row: 2, column: 6, text: null }]);
    expect(fake.note('Stock', 'G2')).toBeUndefined();
  });

  it('writes a few hundred rows over several ranges in one call', async () => {
    const rows = Array.from({ length: 300 }, (_, i) => [`SKU-${i}`, 'A1', 'Bolt', i, 0, i]);
    const before = fake.writeCalls;

    const ranges = [
      { tab: 'Stock', startRow: 2, rows: rows.slice(0, 150) },
      { tab: 'Stock', startRow: 152, rows: rows.slice(150) },
      { tab: "Bob's stock", startRow: 2, rows: [['x', 'y']] },
    ];
    await target.write(ranges, []);

    expect(fake.writeCalls - before).toBe(1);
    expect((await target.read(['Stock'])).get('Stock')).toHaveLength(301);
  });

  it('splits a very large write into several calls and grows the grid for it', async () => {
    const rows = Array.from({ length: 25_000 }, (_, i) => [`SKU-${i}`, 'A1', 'Bolt', i]);
    const before = fake.writeCalls;

    await target.write([{ tab: 'Stock', startRow: 2, rows }], []);

    expect(fake.writeCalls - before).toBe(4); // appendDimension, then 10,000 + 10,000 + 5,000 rows
    const grid = fake.grid('Stock');
    expect(grid).toHaveLength(25_001);
    expect(grid[25_000]).toEqual(['SKU-24999', 'A1', 'Bolt', 24_999]);
  });

  it('refuses to write to a tab that does not exist', async () => {
    const err = await failure(target.write([{ tab: 'Nope', startRow: 2, rows: [['x']] }], []));
    expect(err.retryable).toBe(false);
  });
});

describe('provider failures', () => {
  beforeEach(() => target.ensureLayout([STOCK]));

  it('surfaces a 429 once, as a retryable ProviderError with Retry-After in ms', async () => {
    fake.failNext(1, 429, 1);
    const before = fake.requests;

    const err = await failure(target.write([{ tab: 'Stock', startRow: 2, rows: [['SKU-1']] }], []));

    expect(err).toMatchObject({ status: 429, retryAfterMs: 1000, retryable: true });
    expect(err.message).toMatch(/Quota exceeded/);
    expect(fake.requests - before).toBe(1);
  });

  it('does not let the client retry a read on its own', async () => {
    fake.failNext(1, 429, 1);
    const before = fake.requests;

    await failure(target.read(['Stock']));

    expect(fake.requests - before).toBe(1);
    expect((await target.read(['Stock'])).get('Stock')).toEqual([HEADER]);
  });

  it('surfaces a 503 as retryable', async () => {
    fake.failNext(1, 503);
    const err = await failure(target.read(['Stock']));
    expect(err).toMatchObject({ status: 503, retryable: true, retryAfterMs: undefined });
  });

  it('answers every k-th call with 429 when asked to', async () => {
    fake.rejectEvery(2);
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await target.read(['Stock']).then(() => 'ok', (e: ProviderError) => e.status));
    expect(outcomes).toEqual(['ok', 429, 'ok', 429]);
  });

  it('turns a timeout into a retryable error with status 0', async () => {
    const impatient = createGoogleSheetsTarget({ spreadsheetId: fake.spreadsheetId, auth: testAuth(), rootUrl: fake.url, timeoutMs: 100 });
    fake.delay(500);
    const err = await failure(impatient.read(['Stock']));
    expect(err).toMatchObject({ status: 0, retryable: true });
  });

  it('turns an unreachable server into a retryable error with status 0', async () => {
    const gone = await startSheetsFake();
    await gone.close();
    const offline = createGoogleSheetsTarget({ spreadsheetId: gone.spreadsheetId, auth: testAuth(), rootUrl: gone.url });
    expect(await failure(offline.ensureLayout([STOCK]))).toMatchObject({ status: 0, retryable: true });
  });

  it('reports an unknown spreadsheet as a non-retryable 404 that says what to check', async () => {
    const wrong = createGoogleSheetsTarget({ spreadsheetId: 'nope', auth: testAuth(), rootUrl: fake.url });
    const err = await failure(wrong.ensureLayout([STOCK]));
    expect(err).toMatchObject({ status: 404, retryable: false });
    expect(err.message).toMatch(/spreadsheet id/);
  });
});

describe('googleAuthFromEnv', () => {
  it('throws a message naming the variables when nothing is configured', () => {
    expect(() => googleAuthFromEnv({})).toThrow(/GOOGLE_SERVICE_ACCOUNT_JSON.*GOOGLE_OAUTH_REFRESH_TOKEN/);
    expect(() => googleAuthFromEnv({ GOOGLE_OAUTH_CLIENT_ID: 'id' })).toThrow(/GOOGLE_OAUTH_CLIENT_SECRET, GOOGLE_OAUTH_REFRESH_TOKEN/);
    expect(() => googleAuthFromEnv({ GOOGLE_SERVICE_ACCOUNT_JSON: '/no/such/key.json' })).toThrow(/neither a JSON key nor a readable file/);
  });

  it('builds a service-account JWT client scoped to spreadsheets', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = {
      type: 'service_account',
      client_email: 'sync@example.iam.gserviceaccount.com',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    };

    const auth = googleAuthFromEnv({ GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(key) });

    expect(auth).toBeInstanceOf(JWT);
    expect((auth as JWT).email).toBe(key.client_email);
    expect((auth as JWT).scopes).toEqual(['https://www.googleapis.com/auth/spreadsheets']);
  });

  it('builds an OAuth2 client that refreshes its token at GOOGLE_TOKEN_URL', async () => {
    const tokens = http.createServer((req, res) => {
      const token = { access_token: 'fresh', expires_in: 3600, token_type: 'Bearer' };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(token));
    });
    await new Promise<void>((resolve) => tokens.listen(0, '127.0.0.1', resolve));
    try {
      const auth = googleAuthFromEnv({
        GOOGLE_OAUTH_CLIENT_ID: 'id',
        GOOGLE_OAUTH_CLIENT_SECRET: 'secret',
        GOOGLE_OAUTH_REFRESH_TOKEN: 'refresh',
        GOOGLE_TOKEN_URL: `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`,
      });
      const viaOauth = createGoogleSheetsTarget({ spreadsheetId: fake.spreadsheetId, auth, rootUrl: fake.url });

      await viaOauth.ensureLayout([STOCK]);

      expect(fake.grid('Stock')).toEqual([HEADER]);
    } finally {
      tokens.close();
    }
  });
});
