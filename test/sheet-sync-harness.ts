/**
 * Runs a sheet mirror in-process for tests: the real engine on a real adapter (its provider faked by a
 * local server), fed by a ProjectorRuntime from the test's CDC stream, sending edits to the test's API
 * over HTTP. Also: the API served on a free port, and what every tab should show according to Postgres.
 */
import { serve } from '@hono/node-server';
import { connect } from '@nats-io/transport-node';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import pino from 'pino';
import { ProjectorRuntime } from '../projectors/runtime/projector-runtime.ts';
import { STOCK } from '../projectors/sheet-sync/layout.ts';
import { createSheetSync, type Quotas } from '../projectors/sheet-sync/sheet-projector.ts';
import type { CellValue, SheetTarget } from '../projectors/sheet-sync/sheet-target.ts';
import type { SheetSyncEngine } from '../projectors/sheet-sync/sync-engine.ts';
import type { Harness } from './harness.ts';
import { keepRunning, SHARED_NATS, type PipelineNames } from './pipeline-harness.ts';

/** Serves the harness app on a free loopback port (the engine reaches the API over HTTP, as in production). */
export async function serveApi(h: Harness): Promise<{ url: string; close(): Promise<void> }> {
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: h.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export interface RunningMirror {
  engine: SheetSyncEngine;
  runtime: ProjectorRuntime;
  stop(): Promise<void>;
}

/** Starts the engine for `target` and a runtime consuming the test's stream under the durable `name`. */
export async function startMirror(props: {
  h: Harness;
  apiUrl: string;
  names: PipelineNames;
  name: string;
  target: SheetTarget;
  quotas?: Quotas;
  flushIntervalMs?: number;
  pollIntervalMs?: number;
}): Promise<RunningMirror> {
  const log = pino({ level: process.env.SHEET_TEST_LOG ?? 'silent' });
  const pool = new pg.Pool({ connectionString: props.h.url, max: 1 });
  const engine = await createSheetSync({
    name: props.name,
    target: props.target,
    pool,
    quotas: props.quotas,
    log,
    config: {
      DATABASE_URL: props.h.url,
      STOCKWIRE_API_URL: props.apiUrl,
      SHEET_SYNC_TOKEN: props.h.tokens['sheet-sync'],
      SHEET_FLUSH_INTERVAL_MS: props.flushIntervalMs ?? 800,
      SHEET_POLL_INTERVAL_MS: props.pollIntervalMs ?? 500,
    },
  }).finally(() => pool.end());
  const nc = await connect({ servers: SHARED_NATS, maxReconnectAttempts: -1 });
  const runtime = new ProjectorRuntime({ nc, stream: props.names.stream, subjectPrefix: props.names.prefix, name: props.name, projection: engine, log, batchSize: 2000 });
  const running = keepRunning(runtime);
  return {
    engine,
    runtime,
    async stop() {
      await engine.stop();
      await running.stop();
      await nc.close();
      await props.target.close();
    },
  };
}

/** What each location tab must show, from Postgres: tab → sku → [on hand, reserved, available, reorder point, version]. */
export async function expectedStockTabs(pool: pg.Pool): Promise<Map<string, Map<string, number[]>>> {
  const { rows } = await pool.query<{ sku: string; location: string; on_hand: number; reserved: number; reorder_point: number; version: string }>(
    `SELECT s.sku, s.location, s.on_hand, s.reserved, p.reorder_point, s.version
       FROM stock_levels s JOIN products p USING (sku) WHERE p.kind = 'simple'`);
  const tabs = new Map<string, Map<string, number[]>>();
  for (const r of rows) {
    if (!tabs.has(r.location)) tabs.set(r.location, new Map());
    tabs.get(r.location)!.set(r.sku, [r.on_hand, r.reserved, r.on_hand - r.reserved, r.reorder_point, Number(r.version)]);
  }
  return tabs;
}

/** The same picture from a grid (rows from row 1, header included). */
export function shownStockTab(grid: CellValue[][] | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const cells of (grid ?? []).slice(1)) {
    if (cells[STOCK.sku] === null || cells[STOCK.sku] === undefined || cells[STOCK.sku] === '') continue;
    out.set(String(cells[STOCK.sku]), [STOCK.onHand, STOCK.reserved, STOCK.available, STOCK.reorderPoint, STOCK.version].map((c) => Number(cells[c])));
  }
  return out;
}

/** Differences between what Postgres holds and what the grids show, as readable lines (empty = in step). */
export async function gridDifferences(pool: pg.Pool, grid: (tab: string) => CellValue[][] | undefined): Promise<string[]> {
  const expected = await expectedStockTabs(pool);
  const out: string[] = [];
  for (const [tab, rows] of expected) {
    const shown = shownStockTab(grid(tab));
    for (const [sku, values] of rows) {
      const seen = shown.get(sku);
      if (!seen || seen.some((v, i) => v !== values[i])) out.push(`${tab}/${sku}: db ${JSON.stringify(values)} sheet ${JSON.stringify(seen ?? null)}`);
    }
  }
  return out;
}
