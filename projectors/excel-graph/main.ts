/** The Excel Online mirror: a workbook on OneDrive/SharePoint through Microsoft Graph (client credentials). */
import { z } from 'zod';
import { runSheetProjector } from '../sheet-sync/sheet-projector.ts';
import { createClientCredentialsAuth } from './graph-auth.ts';
import { createExcelGraphTarget } from './graph-target.ts';

await runSheetProjector({
  name: 'excel-graph',
  config: z.object({
    GRAPH_TENANT_ID: z.string().min(1),
    GRAPH_CLIENT_ID: z.string().min(1),
    GRAPH_CLIENT_SECRET: z.string().min(1),
    GRAPH_DRIVE_ID: z.string().min(1).describe('drive holding the workbook'),
    GRAPH_ITEM_ID: z.string().min(1).describe('the workbook item'),
    GRAPH_BASE_URL: z.string().url().default('https://graph.microsoft.com').describe('tests point it at a local fake'),
    GRAPH_AUTHORITY_HOST: z.string().url().default('https://login.microsoftonline.com'),
  }),
  async createTarget(config, log) {
    const auth = createClientCredentialsAuth({
      tenantId: config.GRAPH_TENANT_ID, clientId: config.GRAPH_CLIENT_ID, clientSecret: config.GRAPH_CLIENT_SECRET, authorityHost: config.GRAPH_AUTHORITY_HOST,
    });
    return { target: createExcelGraphTarget({ driveId: config.GRAPH_DRIVE_ID, itemId: config.GRAPH_ITEM_ID, auth, baseUrl: config.GRAPH_BASE_URL, log }) };
  },
});
