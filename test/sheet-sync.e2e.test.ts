/**
 * The three spreadsheet mirrors end to end: Postgres → cdc reader (child process) → JetStream → the
 * sheet-sync engine on each real adapter → its provider (Google Sheets and Graph faked by local servers
 * speaking their wire protocol, the local workbook a real .xlsx file), and edits back through the API
 * as the sheet-sync role. Each mirror gets the same checks: coalescing within the write budget, the
 * final grid equal to Postgres, edits taken back, invalid and stale edits reverted with a note, no echo,
 * a 429 storm (or a locked workbook) losing nothing, and a restart that rewrites only what changed.
 */
import { connect } from '@nats-io/transport-node';
import ExcelJS from 'exceljs';
import { OAuth2Client } from 'google-auth-library';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishSnapshot } from '../cdc/snapshot.ts';
import { createClientCredentialsAuth } from '../projectors/excel-graph/graph-auth.ts';
import { createExcelGraphTarget } from '../projectors/excel-graph/graph-target.ts';
import { createGoogleSheetsTarget } from '../projectors/google-sheets/google-target.ts';
import { cellRef, STOCK } from '../projectors/sheet-sync/layout.ts';
import type { CellValue, SheetTarget } from '../projectors/sheet-sync/sheet-target.ts';
import { cellValue, createXlsxTarget } from '../projectors/xlsx-local/xlsx-target.ts';
import { startGraphFake } from './fakes/graph-fake.ts';
import { startSheetsFake } from './fakes/sheets-fake.ts';
import { createHarness, type Harness } from './harness.ts';
import { cdcEnv, cleanUp, killAll, SHARED_NATS, startNodeProcess, uniqueNames, until, type PipelineNames } from './pipeline-harness.ts';
import { gridDifferences, serveApi, startMirror, type RunningMirror } from './sheet-sync-harness.ts';

const SKUS = Array.from({ length: 20 }, (_, i) => `SH-${String(i).padStart(2, '0')}`);
const LOCATIONS = ['MAIN', 'SHOP'];
const SHEET_ACTOR = 'test-sheet-sync';

let h: Harness;
let api: Awaited<ReturnType<typeof serveApi>>;
let names: PipelineNames;

beforeAll(async () => {
  h = await createHarness({ poolMax: 8 });
  for (const code of LOCATIONS) await h.fixtures.location(code);
  for (const sku of SKUS) {
    await h.fixtures.product(sku, { reorder_point: 5 });
    for (const code of LOCATIONS) await h.fixtures.receive(sku, code, 1000);
  }
  await h.fixtures.product('SH-CREAM', { lot_tracked: true, reorder_point: 3 });
  await h.fixtures.receive('SH-CREAM', 'MAIN', 40, { lot_code: 'L-1', expires_on: '2031-01-31' });
  await h.fixtures.receive('SH-CREAM', 'MAIN', 10, { lot_code: 'L-2', expires_on: '2030-06-30' });
  await h.fixtures.product('SH-SET', { components: [{ sku: 'SH-00', qty: 1 }, { sku: 'SH-CREAM', qty: 1 }] });
  api = await serveApi(h);
  names = uniqueNames('sheets');
  startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
}, 120_000);

afterAll(async () => {
  await killAll();
  await cleanUp({ databaseUrl: h.url, names });
  await api.close();
  await h.close();
});

/** A mirror under test: how to build its adapter, and how a person (or the provider) sees and edits it. */
interface MirrorFixture {
  target(): SheetTarget;
  grid(tab: string): Promise<CellValue[][]>;
  edit(tab: string, a1: string, value: CellValue): Promise<void>;
  note(tab: string, a1: string): Promise<string | undefined>;
  writeCalls(): number;
  /** a person wrecks a tab (deletes it where the provider allows, else empties its rows) */
  wreck(tab: string): Promise<void>;
  /** provider trouble: every second call refused with 429 (a locked file for the workbook) */
  trouble(on: boolean): Promise<void>;
  close(): Promise<void>;
}

async function googleFixture(): Promise<MirrorFixture> {
  const fake = await startSheetsFake();
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'test-token', expiry_date: Date.now() + 3600_000 });
  return {
    target: () => createGoogleSheetsTarget({ spreadsheetId: fake.spreadsheetId, auth, rootUrl: fake.url }),
    grid: async (tab) => {
      try {
        return fake.grid(tab);
      } catch {
        return []; // the tab is gone
      }
    },
    edit: async (tab, a1, value) => fake.setCell(tab, a1, value),
    note: async (tab, a1) => fake.note(tab, a1),
    writeCalls: () => fake.writeCalls,
    wreck: async (tab) => fake.deleteTab(tab),
    trouble: async (on) => (on ? fake.rejectEvery(2, 429, 1) : fake.resetFaults()),
    close: () => fake.close(),
  };
}

async function graphFixture(): Promise<MirrorFixture> {
  const fake = await startGraphFake();
  const auth = createClientCredentialsAuth({ tenantId: 'tenant-1', clientId: 'client-1', clientSecret: 'secret-1', authorityHost: fake.authorityHost });
  return {
    target: () => createExcelGraphTarget({ driveId: 'drive-1', itemId: 'item-1', auth, baseUrl: fake.baseUrl }),
    grid: async (tab) => fake.grid(tab),
    edit: async (tab, a1, value) => fake.setCell(tab, a1, value),
    note: async (tab, a1) => fake.notes().find((n: { tab: string; cell: string; note: string }) => n.tab === tab && n.cell === a1)?.note,
    writeCalls: () => fake.writeCalls,
    async wreck(tab) {
      fake.grid(tab).forEach((cells, r) => cells.forEach((_, c) => r > 0 && fake.setCell(tab, cellRef(c, r + 1), null)));
    },
    trouble: async (on) => (on ? fake.rejectEvery(2, 429, 1) : fake.resetFaults()),
    close: () => fake.close(),
  };
}

async function xlsxFixture(): Promise<MirrorFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-xlsx-'));
  const file = path.join(dir, 'inventory.xlsx');
  const lockFile = path.join(dir, '.~lock.inventory.xlsx#');
  let writes = 0;
  const open = async () => {
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.readFile(file);
    return wb;
  };
  return {
    target: () => {
      const target = createXlsxTarget({ path: file, watchIntervalMs: 200 });
      const write = target.write.bind(target);
      target.write = async (ranges, notes) => {
        await write(ranges, notes);
        writes += 1;
      };
      return target;
    },
    async grid(tab) {
      const ws = (await open()).getWorksheet(tab);
      const rows: CellValue[][] = [];
      ws?.eachRow({ includeEmpty: true }, (row, n) => {
        rows[n - 1] = Array.from({ length: 12 }, (_, c) => cellValue(row.getCell(c + 1)));
      });
      return Array.from(rows, (r) => r ?? []);
    },
    async edit(tab, a1, value) {
      // a person saving the file in Excel: the whole workbook is rewritten
      const wb = await open();
      wb.getWorksheet(tab)!.getCell(a1).value = value;
      await wb.xlsx.writeFile(file);
    },
    async note(tab, a1) {
      const note = (await open()).getWorksheet(tab)?.getCell(a1).note;
      return typeof note === 'string' ? note : note?.texts?.map((t) => t.text).join('');
    },
    writeCalls: () => writes,
    async wreck(tab) {
      const wb = await open();
      wb.removeWorksheet(wb.getWorksheet(tab)!.id);
      await wb.xlsx.writeFile(file);
    },
    trouble: async (on) => (on ? writeFile(lockFile, 'someone,host,0;') : rm(lockFile, { force: true })),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

function rowOf(grid: CellValue[][], sku: string): number {
  const index = grid.findIndex((cells) => cells?.[STOCK.sku] === sku);
  if (index < 1) throw new Error(`${sku} is not in the grid`);
  return index + 1;
}

async function sheetMovements(sku: string, location: string) {
  const { rows } = await h.pool.query('SELECT id, delta_on_hand FROM stock_movements WHERE actor = $1 AND sku = $2 AND location = $3 ORDER BY id', [SHEET_ACTOR, sku, location]);
  return rows;
}

async function onHand(sku: string, location: string): Promise<{ on_hand: number; version: number }> {
  const { rows } = await h.pool.query('SELECT on_hand, version FROM stock_levels WHERE sku = $1 AND location = $2', [sku, location]);
  return { on_hand: rows[0].on_hand, version: Number(rows[0].version) };
}

async function inStep(fx: MirrorFixture, timeoutMs = 60_000) {
  const grids = new Map<string, CellValue[][]>();
  await until('the sheet to equal Postgres', async () => {
    for (const tab of LOCATIONS) grids.set(tab, await fx.grid(tab));
    return (await gridDifferences(h.pool, (tab) => grids.get(tab))).length === 0 ? true : undefined;
  }, timeoutMs, 200).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${(await gridDifferences(h.pool, (tab) => grids.get(tab))).slice(0, 5).join('; ')}`);
  });
}

/**
 * `count` stock changes spread evenly over `seconds`, on random rows: one ledger row per transaction,
 * written straight to the ledger (what the API's adjustment writes) so a loaded machine still produces
 * them on time; `viaApi` sends them through the API instead.
 */
async function changeStock(count: number, seconds: number, viaApi = false) {
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    const due = started + (i * seconds * 1000) / count;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    const sku = SKUS[Math.floor(Math.random() * SKUS.length)]!;
    const location = LOCATIONS[i % LOCATIONS.length]!;
    const delta = i % 3 === 0 ? -1 : 1;
    if (viaApi) await h.ok(200, 'POST', '/v1/adjustments', { body: { sku, location, delta, reason: 'correction' } });
    else {
      await h.pool.query(
        `INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, cause, actor, note)
         VALUES ($1, $2, $3, 0, 'adjustment', 'correction', 'test-load', 'sheet-sync test load')`, [sku, location, delta]);
    }
  }
  return Date.now() - started;
}

describe.each([
  ['google-sheets', googleFixture],
  ['excel-graph', graphFixture],
  ['xlsx-local', xlsxFixture],
] as const)('%s mirror', (kind, makeFixture) => {
  let fx: MirrorFixture;
  let mirror: RunningMirror;
  const durable = `sheets_${kind.replace('-', '_')}`;
  const start = async () => (mirror = await startMirror({ h, apiUrl: api.url, names, name: durable, target: fx.target() }));

  beforeAll(async () => {
    fx = await makeFixture();
    await start();
    await inStep(fx);
  }, 120_000);

  afterAll(async () => {
    await mirror?.stop();
    await fx?.close();
  });

  it('coalesces 1,000 stock changes in 10 s into at most 15 write calls, and ends equal to Postgres', async () => {
    const before = fx.writeCalls();
    await changeStock(1000, 10);
    await inStep(fx);
    const calls = fx.writeCalls() - before;
    console.log(`${kind}: 1,000 changes in 10 s → ${calls} write calls`);
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(15);
    // lots and bundles are mirrored too
    const lots = await fx.grid('Lots');
    expect(lots.slice(1).map((r) => [r[0], r[4]]).sort()).toEqual([['L-1', 40], ['L-2', 10]]);
    const bundles = await fx.grid('Bundles');
    const set = bundles.find((r) => r?.[0] === 'SH-SET' && r[2] === 'MAIN');
    expect(set?.[4]).toBe(Math.min((await onHand('SH-00', 'MAIN')).on_hand, 50));
    const main = await fx.grid('MAIN');
    expect(main[rowOf(main, 'SH-CREAM') - 1]![STOCK.nearestExpiry]).toBe('2030-06-30');
  }, 90_000);

  it('takes an on-hand edit back as a count by sheet-sync, and does not echo it', async () => {
    const sku = 'SH-05';
    const row = rowOf(await fx.grid('MAIN'), sku);
    const target = (await onHand(sku, 'MAIN')).on_hand + 7;
    const readsBefore = mirror.engine.counters.readCalls;
    const movesBefore = (await sheetMovements(sku, 'MAIN')).length; // earlier mirrors edited this row too
    await fx.edit('MAIN', cellRef(STOCK.onHand, row), target);
    await until('the edit to reach Postgres', async () => ((await onHand(sku, 'MAIN')).on_hand === target ? true : undefined), 5_000 + 1_000, 50);
    expect(await sheetMovements(sku, 'MAIN')).toHaveLength(movesBefore + 1);
    // the sheet catches up (version and synced copy) and later reads see no edit: no echo
    await until('the synced copy to follow', async () => {
      const cells = (await fx.grid('MAIN'))[row - 1]!;
      return cells[STOCK.syncedOnHand] === target && cells[STOCK.version] === (await onHand(sku, 'MAIN')).version ? true : undefined;
    }, 10_000);
    await until('three more reads', () => (mirror.engine.counters.readCalls >= readsBefore + 4 ? true : undefined), 20_000);
    expect(await sheetMovements(sku, 'MAIN')).toHaveLength(movesBefore + 1);
    expect((await onHand(sku, 'MAIN')).on_hand).toBe(target);
  }, 60_000);

  it('reverts a text value with a note saying why', async () => {
    const sku = 'SH-06';
    const row = rowOf(await fx.grid('SHOP'), sku);
    const before = await onHand(sku, 'SHOP');
    const a1 = cellRef(STOCK.onHand, row);
    await fx.edit('SHOP', a1, 'twelve');
    await until('the cell to be reverted', async () => ((await fx.grid('SHOP'))[row - 1]![STOCK.onHand] === before.on_hand ? true : undefined), 10_000);
    expect(await fx.note('SHOP', a1)).toMatch(/not a quantity/);
    expect(await sheetMovements(sku, 'SHOP')).toHaveLength(0);
    expect((await onHand(sku, 'SHOP')).on_hand).toBe(before.on_hand);
  }, 30_000);

  it('reverts a stale edit made while the sync was down, and the restart rewrites only what changed', async () => {
    const sku = 'SH-07';
    await mirror.stop();
    const grid = await fx.grid('MAIN');
    const row = rowOf(grid, sku);
    const a1 = cellRef(STOCK.onHand, row);
    await fx.edit('MAIN', a1, 3);
    // meanwhile the row changes in stockwire, so the version the sheet shows is stale
    await h.ok(200, 'POST', '/v1/adjustments', { body: { sku, location: 'MAIN', delta: 2, reason: 'found' } });
    await start();
    const now = await onHand(sku, 'MAIN');
    await until('the stale edit to be reverted', async () => ((await fx.grid('MAIN'))[row - 1]![STOCK.onHand] === now.on_hand ? true : undefined), 15_000);
    expect(await fx.note('MAIN', a1)).toMatch(/changed in stockwire/);
    expect(await sheetMovements(sku, 'MAIN')).toHaveLength(0);
    await inStep(fx);
    // ~45 rows in the workbook; the restart wrote the one stale row (and what the one change touched)
    expect(mirror.engine.counters.rowsWritten).toBeGreaterThan(0);
    expect(mirror.engine.counters.rowsWritten).toBeLessThanOrEqual(4);
  }, 60_000);

  it('rebuilds a wrecked tab from a resync (npm run resync)', async () => {
    await fx.wreck('SHOP');
    const nc = await connect({ servers: SHARED_NATS });
    try {
      await publishSnapshot({ databaseUrl: h.url, nc, subjectPrefix: names.prefix, publication: 'stockwire' });
    } finally {
      await nc.close();
    }
    await inStep(fx);
  }, 60_000);

  it('loses nothing while the provider refuses every second call', async () => {
    await fx.trouble(true);
    try {
      await changeStock(300, 3, true);
      await until('the engine to have retried', () => (mirror.engine.counters.providerRetries > 0 ? true : undefined), 30_000);
    } finally {
      await fx.trouble(false);
    }
    await inStep(fx);
  }, 90_000);
});
