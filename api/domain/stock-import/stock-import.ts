/**
 * A stock-count import from end to end, shared by POST /v1/imports and `npm run import`: size limit,
 * content sniffing, the XLSX guard, parsing, per-row and catalog validation, then one command-runner
 * transaction (one audit row for the whole file, idempotency for free) that locks, plans and writes.
 * Any row error refuses the whole file with every error listed; nothing is applied. A dry run does all
 * of it in a read-only snapshot and writes nothing.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../../db/schema.ts';
import type { CommandMeta, CommandResult, CommandTx, RunCommand } from '../command-runner.ts';
import { loadCatalogFacts } from './catalog-facts.ts';
import { sniffFormat, type FileFormat } from './file-sniffer.ts';
import { applyCounts } from './import-applier.ts';
import { FileTooLarge, ImportInvalid, type RowError } from './import-errors.ts';
import { DEFAULT_IMPORT_LIMITS, type ImportLimits } from './limits.ts';
import { parseRows } from './row-parser.ts';
import { checkRowsAgainstCatalog, checkRowShapes, type CountRow } from './row-validator.ts';
import { assertSafeXlsx } from './xlsx-guard.ts';

export interface ImportResult {
  import_id: string;
  dry_run: boolean;
  format: FileFormat;
  /** data rows in the file */
  rows: number;
  /** rows whose count differed from stock (one ledger row each) */
  applied: number;
  /** rows whose count equalled stock (nothing written) */
  unchanged: number;
  errors: RowError[];
}

export type ImportProgress =
  | { stage: 'parsing'; rows: number }
  | { stage: 'parsed'; rows: number; format: FileFormat }
  | { stage: 'applying'; rows: number };

export interface ImportFile {
  bytes: Buffer;
  dryRun: boolean;
  /** every row is at this location (the file may then omit the location column) */
  location?: string | undefined;
  onProgress?: ((progress: ImportProgress) => void) | undefined;
}

/** What identifies a file for Idempotency-Key matching: its content and the options it was sent with. */
export function importFingerprint(file: Pick<ImportFile, 'bytes' | 'dryRun' | 'location'>) {
  return { file_sha256: createHash('sha256').update(file.bytes).digest('hex'), dry_run: file.dryRun, location: file.location ?? null };
}

export function createStockImporter(props: { db: Kysely<Database>; runCommand: RunCommand; clock: () => Date; limits?: ImportLimits }) {
  const limits = props.limits ?? DEFAULT_IMPORT_LIMITS;

  /** Imports one file as `meta.actor`; throws an ApiError (415, 413, 422) when the file is refused. */
  return async function importStockFile(meta: CommandMeta, file: ImportFile): Promise<CommandResult<ImportResult>> {
    if (file.bytes.length > limits.maxFileBytes) throw new FileTooLarge(limits.maxFileBytes);
    const format = sniffFormat(file.bytes);
    if (format === 'xlsx') await assertSafeXlsx(file.bytes, limits);
    const parsed = await parseRows(file.bytes, format, {
      limits, fixedLocation: file.location, onProgress: (rows) => file.onProgress?.({ stage: 'parsing', rows }),
    });
    file.onProgress?.({ stage: 'parsed', rows: parsed.rows.length, format });
    const shaped = checkRowShapes(parsed.rows, file.location);
    const earlyErrors = [...parsed.errors, ...shaped.errors];
    const importId = randomUUID();
    const now = props.clock();

    /** Validates against the catalog, then plans (and writes, unless `write` is false) in `trx`. */
    async function run(trx: CommandTx, write: boolean): Promise<ImportResult> {
      const facts = await loadCatalogFacts(trx, shaped.rows);
      const errors = [...earlyErrors, ...checkRowsAgainstCatalog(shaped.rows, facts)];
      // rows without errors so far are still planned, so quantities below what is reserved show up too
      const bad = new Set(errors.map((e) => e.row));
      const clean: CountRow[] = shaped.rows.filter((r) => !bad.has(r.row));
      file.onProgress?.({ stage: 'applying', rows: clean.length });
      const plan = await applyCounts({ trx, rows: clean, facts, write: write && errors.length === 0, importId, actor: meta.actor, requestId: meta.requestId, now });
      errors.push(...plan.errors);
      if (errors.length > 0) throw new ImportInvalid(errors, limits.maxReportedErrors);
      return {
        import_id: importId, dry_run: !write, format, rows: parsed.rows.length,
        applied: plan.movements.length, unchanged: plan.unchanged, errors: [],
      };
    }

    if (file.dryRun) {
      const body = await props.db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute((trx) => run(trx, false));
      return { status: 200, body, replayed: false };
    }
    return props.runCommand(meta, async (trx) => {
      const body = await run(trx, true);
      const fingerprint = importFingerprint(file);
      return {
        status: 201,
        body,
        audit: {
          action: 'stock.import', entity: 'import', entityId: importId,
          after: { format, file_sha256: fingerprint.file_sha256, location: file.location ?? null, rows: body.rows, applied: body.applied, unchanged: body.unchanged },
        },
      };
    });
  };
}

export type StockImporter = ReturnType<typeof createStockImporter>;
