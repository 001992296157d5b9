/**
 * The alerts projector process: low-stock (with hysteresis) and lot-expiry alerts from the CDC stream to
 * Slack, PagerDuty and e-mail (each optional; the log when none is configured), with the alert state in
 * a NATS KV bucket so a restart neither repeats nor forgets an alert.
 */
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { z } from 'zod';
import { survivePostgresRestarts } from '../../db/connection.ts';
import { runProjectorProcess } from '../runtime/projector-process.ts';
import { createAlertState, DEFAULT_ALERT_BUCKET, openAlertBucket } from './alert-state.ts';
import { createAlertsProjection, loadAlertModel, selectChannels } from './alerts-projection.ts';
import { PAGERDUTY_EVENTS_URL } from './channels/pagerduty.ts';

const optional = z.string().trim().min(1).optional().or(z.literal('').transform(() => undefined));

await runProjectorProcess({
  name: 'alerts',
  config: z.object({
    DATABASE_URL: z.string().min(1).describe('Postgres, read-only use: the starting model (products, stock levels, lots)'),
    ALERT_BUCKET: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default(DEFAULT_ALERT_BUCKET).describe('NATS KV bucket holding the alert state (tests use their own)'),
    ALERT_RECOVERY_MARGIN: z.coerce.number().int().min(0).optional().describe('units above the reorder point at which a low-stock alert clears (default max(1, 10 % of the reorder point))'),
    EXPIRY_ALERT_DAYS: z.coerce.number().int().min(0).max(3650).default(30).describe('lots with stock expiring within this many days are alerted'),
    ALERT_CHECK_INTERVAL_MS: z.coerce.number().int().min(1000).default(3_600_000).describe('how often lots are re-checked for expiry and undelivered alerts retried'),
    SLACK_WEBHOOK_URL: optional.pipe(z.string().url().optional()).describe('Slack incoming webhook; unset = no Slack'),
    PAGERDUTY_ROUTING_KEY: optional.describe('PagerDuty Events v2 integration key; unset = no PagerDuty'),
    PAGERDUTY_EVENTS_URL: z.string().url().default(PAGERDUTY_EVENTS_URL).describe('PagerDuty Events v2 enqueue endpoint'),
    PAGERDUTY_SOURCE: z.string().min(1).default('stockwire').describe('payload.source of PagerDuty events'),
    SMTP_URL: optional.pipe(z.string().url().optional()).describe('SMTP server for e-mail alerts, smtp(s)://user:pass@host:port; unset = no e-mail'),
    ALERT_EMAIL_FROM: optional.describe('From address of alert e-mails (required with SMTP_URL)'),
    ALERT_EMAIL_TO: optional
      .transform((v) => v?.split(',').map((s) => s.trim()).filter(Boolean))
      .describe('comma-separated recipients of alert e-mails (required with SMTP_URL)'),
  }),
  async create(config, log) {
    const channels = selectChannels(config, log);
    log.info({ channels: channels.map((c) => c.name) }, 'alert channels');
    const nc = await connect({ servers: config.NATS_URL.split(','), name: `stockwire-alerts-state-${process.pid}`, maxReconnectAttempts: -1 });
    const pool = survivePostgresRestarts(new pg.Pool({ connectionString: config.DATABASE_URL, max: 1 }));
    try {
      const state = createAlertState({ kv: await openAlertBucket(nc, config.ALERT_BUCKET) });
      const model = await loadAlertModel(pool);
      const projection = await createAlertsProjection({
        state, channels, model, log,
        settings: { expiryDays: config.EXPIRY_ALERT_DAYS, recoveryMargin: config.ALERT_RECOVERY_MARGIN, checkIntervalMs: config.ALERT_CHECK_INTERVAL_MS },
      });
      projection.start();
      return {
        projection,
        async close() {
          await projection.stop();
          await nc.close();
        },
      };
    } catch (err) {
      await nc.close().catch(() => {});
      throw err;
    } finally {
      await pool.end();
    }
  },
});
