/**
 * What every sheet projector process shares: its configuration, the start-up picture from Postgres,
 * the API client for inbound edits and the engine. A mirror's main.ts only adds how to reach its
 * provider (createTarget) and that provider's quotas.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { survivePostgresRestarts } from '../../db/connection.ts';
import '../../db/type-parsers.ts';
import { runProjectorProcess, type ProjectorBaseConfig } from '../runtime/projector-process.ts';
import { loadModelSnapshot } from './model-loader.ts';
import type { SheetTarget } from './sheet-target.ts';
import { createStockwireClient } from './stockwire-client.ts';
import { SheetSyncEngine } from './sync-engine.ts';
import { TokenBucket } from './token-bucket.ts';
import { WorkbookModel } from './workbook-model.ts';

export const sheetSyncConfig = z.object({
  DATABASE_URL: z.string().min(1).describe('read once at start for the initial picture (read-only queries)'),
  STOCKWIRE_API_URL: z.string().url().default('http://127.0.0.1:8080').describe('where inbound edits are sent'),
  SHEET_SYNC_TOKEN: z.string().min(20).describe('bearer token (JWT or API key) of the sheet-sync role'),
  SHEET_FLUSH_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(800).describe('minimum time between two writes; changes within it coalesce'),
  SHEET_POLL_INTERVAL_MS: z.coerce.number().int().min(200).max(600_000).default(5000).describe('how often the sheet is read for edits'),
});

export type SheetSyncConfig = z.infer<typeof sheetSyncConfig>;

export interface Quotas {
  writesPerMinute?: number | undefined;
  readsPerMinute?: number | undefined;
}

export interface SheetProjectorDefinition<C extends z.ZodObject> {
  name: string;
  config: C;
  createTarget(config: z.infer<C> & SheetSyncConfig & ProjectorBaseConfig, log: Logger): Promise<{ target: SheetTarget; quotas?: Quotas }>;
}

const callsTotal = new Counter({
  name: 'stockwire_sheet_calls_total', help: 'Calls to the spreadsheet provider', labelNames: ['projector', 'kind', 'outcome'], registers: [],
});
const editsTotal = new Counter({ name: 'stockwire_sheet_edits_total', help: 'Inbound sheet edits', labelNames: ['projector', 'outcome'], registers: [] });

/** Builds the engine for one mirror: model from Postgres, API client, quotas. Used by main.ts files and tests. */
export async function createSheetSync(props: {
  name: string;
  target: SheetTarget;
  pool: pg.Pool;
  config: SheetSyncConfig;
  quotas?: Quotas | undefined;
  log: Logger;
}): Promise<SheetSyncEngine> {
  const model = new WorkbookModel(await loadModelSnapshot(props.pool));
  const bucket = (perMinute: number | undefined) => (perMinute ? new TokenBucket(perMinute, Math.max(1, Math.floor(perMinute / 20))) : undefined);
  const engine = new SheetSyncEngine({
    target: props.target,
    model,
    api: createStockwireClient({ baseUrl: props.config.STOCKWIRE_API_URL, token: props.config.SHEET_SYNC_TOKEN, source: props.name }),
    log: props.log,
    flushIntervalMs: props.config.SHEET_FLUSH_INTERVAL_MS,
    pollIntervalMs: props.config.SHEET_POLL_INTERVAL_MS,
    writeQuota: bucket(props.quotas?.writesPerMinute),
    readQuota: bucket(props.quotas?.readsPerMinute),
    onCall: (kind, ok) => callsTotal.inc({ projector: props.name, kind, outcome: ok ? 'ok' : 'failed' }),
    onEdit: (outcome) => editsTotal.inc({ projector: props.name, outcome }),
  });
  await engine.start();
  return engine;
}

export async function runSheetProjector<C extends z.ZodObject>(def: SheetProjectorDefinition<C>): Promise<void> {
  await runProjectorProcess({
    name: def.name,
    config: sheetSyncConfig.merge(def.config),
    async create(parsed, log, registry) {
      const config = parsed as unknown as z.infer<C> & SheetSyncConfig & ProjectorBaseConfig;
      registry.registerMetric(callsTotal);
      registry.registerMetric(editsTotal);
      const { target, quotas } = await def.createTarget(config, log);
      // Postgres is read once, for the starting picture; the stream keeps it current from then on
      const pool = survivePostgresRestarts(new pg.Pool({ connectionString: config.DATABASE_URL, max: 1, application_name: `stockwire-${def.name}` }));
      try {
        const engine = await createSheetSync({ name: def.name, target, pool, config, quotas, log });
        log.info({ kind: target.kind, flushIntervalMs: config.SHEET_FLUSH_INTERVAL_MS, pollIntervalMs: config.SHEET_POLL_INTERVAL_MS }, 'sheet sync started');
        return {
          projection: engine,
          async close() {
            await engine.stop();
            await target.close();
          },
        };
      } catch (err) {
        await target.close().catch(() => {});
        throw err;
      } finally {
        await pool.end().catch(() => {});
      }
    },
  });
}
