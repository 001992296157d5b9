/** The local workbook mirror (the embedded default): `.data/inventory.xlsx`, both ways. */
import path from 'node:path';
import { z } from 'zod';
import { runSheetProjector } from '../sheet-sync/sheet-projector.ts';
import { createXlsxTarget } from './xlsx-target.ts';

await runSheetProjector({
  name: 'xlsx-local',
  config: z.object({
    XLSX_PATH: z.string().min(1).default('.data/inventory.xlsx').describe('the workbook file (created when missing)'),
  }),
  async createTarget(config, log) {
    return { target: createXlsxTarget({ path: path.resolve(config.XLSX_PATH), log }) };
  },
});
