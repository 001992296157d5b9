/**
 * `npm start` as a user runs it: a private Postgres under a fresh DATA_DIR, migrations, the demo catalog,
 * the API on PORT, a printed URL and admin token that work, and a clean stop on Ctrl-C (SIGINT).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import ExcelJS from 'exceljs';
import { Redis } from 'ioredis';
import { STOCK } from '../projectors/sheet-sync/layout.ts';
import { STATUS_BUCKET } from '../projectors/runtime/projector-process.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedCluster } from '../db/cluster.ts';
import { portOpen } from '../scripts/nats-server.ts';
import { freePort } from './free-port.ts';
import { until } from './pipeline-harness.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const started: ChildProcess[] = [];
const dirs: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

async function deleteStream(name: string) {
  const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
  const jsm = await jetstreamManager(nc);
  for (const s of [name, `${name}_DLQ`]) await jsm.streams.delete(s).catch(() => {});
  const status = await new Kvm(nc).open(STATUS_BUCKET).catch(() => undefined);
  for (const projector of ['redis-cache', 'xlsx-local', 'alerts']) await status?.purge(`${name}.${projector}`).catch(() => {});
  await jsm.streams.delete(`KV_alerts_${name.toLowerCase()}`).catch(() => {});
  await nc.close();
}

async function deleteKeys(pattern: string) {
  const redis = new Redis('redis://127.0.0.1:6379');
  const keys = await redis.keys(pattern);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
}

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => {});
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-start-'));
  await chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}

function launch(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

const listening = (port: number) => portOpen(new URL(`tcp://127.0.0.1:${port}`));

describe('npm start', () => {
  it('serves the demo catalog with the printed token, restarts a killed service, and stops cleanly on SIGINT', async () => {
    const [port, pgPort] = [await freePort(), await freePort()];
    const unique = `e2e${process.pid}${Date.now().toString(36)}`;
    const dataDir = await tempDir();
    const run = launch({
      DATA_DIR: dataDir, PORT: String(port), PG_PORT: String(pgPort), DATABASE_URL: '',
      // the machine's NATS and Redis are shared: this run gets its own stream, subjects and keys
      CDC_STREAM: unique.toUpperCase(), CDC_SUBJECT_PREFIX: unique, REDIS_PREFIX: `${unique}:`, CDC_PROBE_PORT: '0', PROJECTOR_PROBE_PORT: '0',
      ALERT_BUCKET: `alerts_${unique}`,
    });
    cleanups.push(() => deleteStream(unique.toUpperCase()), () => deleteKeys(`${unique}:*`));
    const output = await until('the ready banner', () => (/stockwire is running: (\S+)[\s\S]*?token \(12 h\):\n(\S+)/.exec(run.out()) ?? undefined));
    const [, url, token] = output;
    const auth = { authorization: `Bearer ${token}` };
    const products = await (await fetch(`${url}/v1/products`, { headers: auth })).json();
    const categories = new Set(products.products.map((p: { category: string }) => p.category));
    expect(products.products.length).toBeGreaterThanOrEqual(33);
    expect([...categories].sort()).toEqual(['beauty', 'bundle', 'linens', 'sheets']);
    const locations = await (await fetch(`${url}/v1/locations`, { headers: auth })).json();
    expect(locations.locations).toHaveLength(2);
    const cream = await (await fetch(`${url}/v1/stock/CREAM-HAND-50ML`, { headers: auth })).json();
    expect(cream.lots.some((l: { expired: boolean }) => l.expired)).toBe(true);
    expect((await fetch(`${url}/v1/stock`)).status).toBe(401);

    // the whole pipeline: a write's X-Stockwire-LSN, then a cache read that waits for it
    const placed = await fetch(`${url}/v1/orders`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ lines: [{ sku: 'TOWEL-HAND-WHITE', qty: 2 }] }),
    });
    expect(placed.status).toBe(201);
    const lsn = placed.headers.get('x-stockwire-lsn');
    expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const db = await (await fetch(`${url}/v1/stock/TOWEL-HAND-WHITE/MAIN`, { headers: { ...auth, 'x-request-id': 'db-read' } })).json();
    const cached = await until('the cache to pass the write', async () => {
      const res = await fetch(`${url}/v1/stock/TOWEL-HAND-WHITE/MAIN?min_lsn=${lsn}`, { headers: auth });
      return res.headers.get('x-stockwire-source') === 'cache' ? res.json() : undefined;
    });
    expect(cached).toMatchObject({ reserved: db.reserved, on_hand: db.on_hand, version: db.version });
    expect(cached.reserved).toBeGreaterThanOrEqual(2);
    const status = await until('sync status to list the redis-cache projector', async () => {
      const s = await (await fetch(`${url}/v1/sync/status`, { headers: auth })).json();
      return s.projectors.some((p: { name: string }) => p.name === 'redis-cache') ? s : undefined;
    });
    expect(status.slot).toMatchObject({ name: 'stockwire', active: true });

    // the local workbook mirror: the order shows in .data/inventory.xlsx, and an edit saved there is booked
    const workbook = path.join(dataDir, 'inventory.xlsx');
    const sheetRow = async (sku: string) => {
      const wb = new ExcelJS.Workbook();
      await wb.xlsx.readFile(workbook).catch(() => undefined);
      let found: ExcelJS.Row | undefined;
      wb.getWorksheet('MAIN')?.eachRow((row) => {
        if (row.getCell(STOCK.sku + 1).value === sku) found = row;
      });
      return { wb, row: found };
    };
    await until('the workbook to show the reservation', async () => {
      const { row } = await sheetRow('TOWEL-HAND-WHITE');
      return row && row.getCell(STOCK.reserved + 1).value === db.reserved ? true : undefined;
    });
    const edited = await sheetRow('TOWEL-BATH-WHITE');
    const counted = Number(edited.row!.getCell(STOCK.onHand + 1).value) + 5;
    edited.row!.getCell(STOCK.onHand + 1).value = counted;
    await edited.wb.xlsx.writeFile(workbook);
    await until('the edit to be booked', async () => {
      const stock = await (await fetch(`${url}/v1/stock/TOWEL-BATH-WHITE/MAIN`, { headers: auth })).json();
      return stock.on_hand === counted ? true : undefined;
    });
    const moves = await (await fetch(`${url}/v1/movements?sku=TOWEL-BATH-WHITE&location=MAIN&limit=1`, { headers: auth })).json();
    expect(moves.movements[0]).toMatchObject({ reason: 'count', actor: 'sheet-sync-local' });

    // the live dashboard is served, and the banner links it with a token in the fragment
    const page = await fetch(`${url}/dashboard`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="');
    expect(run.out()).toMatch(new RegExp(`live dashboard \\(viewer, 12 h\\): ${url!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/dashboard#token=\\S+`));

    // with no alert channel configured, alerts appear in the log: the demo catalog has low stock and an expired lot
    await until('a low-stock alert in the log', () => (/"kind":"low-stock"/.test(run.out()) ? true : undefined));
    await until('an expired-lot alert in the log', () => (/"kind":"expired"/.test(run.out()) ? true : undefined));

    // a service that dies is restarted by the launcher
    const apiPids = () => [...run.out().matchAll(/"child":"api","pid":(\d+)/g)].map((m) => Number(m[1]));
    const [firstPid] = apiPids();
    expect(firstPid).toBeGreaterThan(0);
    process.kill(firstPid!, 'SIGKILL');
    await until('the launcher to restart the api', () => (apiPids().length >= 2 ? true : undefined));
    await until('the restarted api to be ready', async () => ((await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) ? true : undefined));
    expect((await fetch(`${url}/v1/locations`, { headers: auth })).status).toBe(200);

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(await listening(port)).toBe(false);
    expect(await listening(pgPort)).toBe(false);
  });

  it('refuses a DATABASE_URL whose wal_level is not logical, naming the setting', async () => {
    const dir = await tempDir();
    const cluster = await startEmbeddedCluster({ dataDir: path.join(dir, 'replica-pg'), port: await freePort(), password: 'x', walLevel: 'replica' });
    try {
      const run = launch({ DATA_DIR: dir, PORT: String(await freePort()), DATABASE_URL: cluster.adminUrl });
      expect(await run.exited).toBe(1);
      expect(run.err()).toContain('wal_level=replica');
      expect(run.err()).not.toMatch(/\n\s+at /); // a message, not a stack trace
    } finally {
      await cluster.stop();
    }
  });
});
