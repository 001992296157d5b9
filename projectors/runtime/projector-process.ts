/**
 * Entry-point helper for one projector process: configuration from the environment, NATS connection,
 * the sync-status bucket, /healthz /readyz /metrics, the runtime loop restarted with backoff on failure,
 * and a clean stop on SIGTERM/SIGINT.
 */
import { stopWhenParentDies } from '../../lib/parent-watch.ts';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { configOrExit } from '../../lib/env-config.ts';
import { startProbeServer } from '../../lib/probe-server.ts';
import { createProjectorMetrics } from './metrics.ts';
import { ProjectorRuntime, type Projection } from './projector-runtime.ts';

export const STATUS_BUCKET = 'stockwire_projectors';

const baseConfig = z.object({
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  CDC_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('CDC'),
  CDC_SUBJECT_PREFIX: z.string().regex(/^[a-z0-9_-]{1,32}$/).default('cdc'),
  PROJECTOR_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(500),
  PROBE_HOST: z.string().default('127.0.0.1').describe('interface of /healthz /readyz /metrics (0.0.0.0 in containers)'),
  PROJECTOR_PROBE_PORT: z.coerce.number().int().min(0).max(65535).default(0).describe('/healthz /readyz /metrics (0 = any free port)'),
  PROJECTOR_NAME_SUFFIX: z.string().regex(/^[a-z0-9_-]{0,32}$/).default('').describe('tests: distinct durable names per run'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type ProjectorBaseConfig = z.infer<typeof baseConfig>;

export interface ProjectorDefinition<C extends z.ZodObject> {
  name: string;
  config: C;
  /** Builds the projection (connecting to its target); returns it and a close function. */
  create(config: z.infer<C> & ProjectorBaseConfig, log: Logger, registry: Registry): Promise<{ projection: Projection; close(): Promise<void> }>;
}

export async function runProjectorProcess<C extends z.ZodObject>(def: ProjectorDefinition<C>): Promise<void> {
  const config = configOrExit(def.name, baseConfig.merge(def.config)) as z.infer<C> & ProjectorBaseConfig;
  const name = `${def.name}${config.PROJECTOR_NAME_SUFFIX}`;
  const log = pino({ level: config.LOG_LEVEL, base: { service: 'projector', projector: name } });
  const metrics = createProjectorMetrics();
  let runtime: ProjectorRuntime | undefined;
  let nc: NatsConnection | undefined;
  let stopping = false;
  const probe = await startProbeServer({ port: config.PROJECTOR_PROBE_PORT, host: config.PROBE_HOST, registry: metrics.registry, ready: () => runtime !== undefined });
  log.info({ probePort: probe.port() }, 'projector probes listening');

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'projector stopping');
    await runtime?.stop().catch(() => {});
    await nc?.close().catch(() => {});
    await probe.close();
    process.exit(0);
  };
  stopWhenParentDies((reason) => void stop(reason));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  let failures = 0;
  while (!stopping) {
    let target: Awaited<ReturnType<typeof def.create>> | undefined;
    try {
      nc = await connect({ servers: config.NATS_URL.split(','), name: `stockwire-${name}-${process.pid}`, maxReconnectAttempts: -1 });
      const status = await new Kvm(nc).create(STATUS_BUCKET, { history: 1 });
      target = await def.create(config, log, metrics.registry);
      runtime = new ProjectorRuntime({
        nc, stream: config.CDC_STREAM, subjectPrefix: config.CDC_SUBJECT_PREFIX, name, projection: target.projection, log, metrics, status,
        batchSize: config.PROJECTOR_BATCH_SIZE,
      });
      log.info({ stream: config.CDC_STREAM }, 'projector consuming');
      failures = 0;
      await runtime.run();
    } catch (err) {
      if (stopping) break;
      failures += 1;
      const delay = Math.min(10_000, 200 * 2 ** Math.min(failures, 6));
      log.error({ err: { message: (err as Error).message }, retryInMs: delay }, 'projector run ended; restarting');
      await new Promise((r) => setTimeout(r, delay));
    } finally {
      runtime = undefined;
      await target?.close().catch(() => {});
      await nc?.close().catch(() => {});
    }
  }
}
