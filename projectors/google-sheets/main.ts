/** The Google Sheets mirror: Sheets API v4, within the per-user quota (60 reads and 60 writes a minute). */
import { z } from 'zod';
import { runSheetProjector } from '../sheet-sync/sheet-projector.ts';
import { createGoogleSheetsTarget, googleAuthFromEnv } from './google-target.ts';

await runSheetProjector({
  name: 'google-sheets',
  config: z.object({
    GOOGLE_SPREADSHEET_ID: z.string().min(10).describe('the spreadsheet to mirror into (share it with the service account)'),
    GOOGLE_SERVICE_ACCOUNT_JSON: z.string().optional().describe('service-account key: the JSON itself or a path to it'),
    GOOGLE_OAUTH_CLIENT_ID: z.string().optional(),
    GOOGLE_OAUTH_CLIENT_SECRET: z.string().optional(),
    GOOGLE_OAUTH_REFRESH_TOKEN: z.string().optional(),
    GOOGLE_SHEETS_ROOT_URL: z.string().url().optional().describe('API root (tests point it at a local fake)'),
    GOOGLE_WRITES_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(55).describe('write budget (the quota is 60/min/user)'),
    GOOGLE_READS_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(55).describe('read budget (the quota is 60/min/user)'),
  }),
  async createTarget(config, log) {
    const auth = googleAuthFromEnv(config);
    const target = createGoogleSheetsTarget({ spreadsheetId: config.GOOGLE_SPREADSHEET_ID, auth, rootUrl: config.GOOGLE_SHEETS_ROOT_URL, log });
    return { target, quotas: { writesPerMinute: config.GOOGLE_WRITES_PER_MINUTE, readsPerMinute: config.GOOGLE_READS_PER_MINUTE } };
  },
});
