/** The Google Sheets mirror: Sheets API v4, within the per-user quota (60 reads and 60 writes a minute). */
import { z } from 'zod';
import { runSheetProjector } from '../sheet-sync/sheet-projector.ts';
import { withDrivePush } from './drive-push.ts';
import { createGoogleSheetsTarget, googleAuthFromEnv } from './google-target.ts';

await runSheetProjector({
  name: 'google-sheets',
  config: z.object({
    GOOGLE_SPREADSHEET_ID: z.string().min(10).describe('the spreadsheet to mirror into (share it with the service account)'),
    GOOGLE_SERVICE_ACCOUNT_JSON: z.string().optional().describe('service-account key: the JSON itself or a path to it'),
    GOOGLE_OAUTH_CLIENT_ID: z.string().optional(),
    GOOGLE_OAUTH_CLIENT_SECRET: z.string().optional(),
    GOOGLE_OAUTH_REFRESH_TOKEN: z.string().optional(),
    // googleAuthFromEnv honours it, but without this line zod dropped it and the refresh went to Google
    GOOGLE_TOKEN_URL: z.string().url().optional().describe('OAuth token endpoint for the refresh token (default Google\'s; tests point it at a fake)'),
    GOOGLE_SHEETS_ROOT_URL: z.string().url().optional().describe('API root (tests point it at a local fake)'),
    GOOGLE_WRITES_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(55).describe('write budget (the quota is 60/min/user)'),
    GOOGLE_READS_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(55).describe('read budget (the quota is 60/min/user)'),
    GOOGLE_PUSH_ADDRESS: z.string().url().startsWith('https://').optional().describe('public HTTPS URL for Drive push notifications (optional)'),
    GOOGLE_PUSH_PORT: z.coerce.number().int().min(1).max(65535).default(8091).describe('where the push receiver listens behind the proxy'),
    GOOGLE_PUSH_TOKEN: z.string().min(24).optional().describe('shared secret Drive echoes in X-Goog-Channel-Token (required with GOOGLE_PUSH_ADDRESS)'),
  }),
  async createTarget(config, log) {
    const auth = googleAuthFromEnv(config);
    const sheets = createGoogleSheetsTarget({ spreadsheetId: config.GOOGLE_SPREADSHEET_ID, auth, rootUrl: config.GOOGLE_SHEETS_ROOT_URL, log });
    if (config.GOOGLE_PUSH_ADDRESS && !config.GOOGLE_PUSH_TOKEN) throw new Error('GOOGLE_PUSH_TOKEN is required with GOOGLE_PUSH_ADDRESS');
    const target = config.GOOGLE_PUSH_ADDRESS
      ? withDrivePush(sheets, {
          auth, fileId: config.GOOGLE_SPREADSHEET_ID, address: config.GOOGLE_PUSH_ADDRESS, port: config.GOOGLE_PUSH_PORT, token: config.GOOGLE_PUSH_TOKEN!, log,
        })
      : sheets;
    return { target, quotas: { writesPerMinute: config.GOOGLE_WRITES_PER_MINUTE, readsPerMinute: config.GOOGLE_READS_PER_MINUTE } };
  },
});
