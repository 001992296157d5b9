/**
 * npm run import -- FILE [--dry-run] [--location CODE] [--actor NAME]
 * Imports a stock-count file (CSV or XLSX) into DATABASE_URL (or the embedded cluster) with the same
 * checks and the same single transaction as POST /v1/imports. Prints progress on stderr and a summary
 * on stdout; exits 1 with every row error listed when the file is refused (nothing is applied then).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createCommandRunner } from '../api/domain/command-runner.ts';
import { FileTooLarge } from '../api/domain/stock-import/import-errors.ts';
import { DEFAULT_IMPORT_LIMITS } from '../api/domain/stock-import/limits.ts';
import { createStockImporter, type ImportProgress } from '../api/domain/stock-import/stock-import.ts';
import { ApiError } from '../api/errors.ts';
import { openDatabase } from '../db/connection.ts';
import { runCli } from '../lib/cli.ts';
import { resolveDatabase } from './database.ts';
import { dataDirFromEnv } from './dev-secrets.ts';

const USAGE = 'usage: npm run import -- FILE [--dry-run] [--location CODE] [--actor NAME]';

/** Reads the file, stopping as soon as it passes the limit (its size on disk is not trusted alone). */
async function readFileLimited(file: string, limit: number): Promise<Buffer> {
  if ((await stat(file)).size > limit) throw new FileTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new FileTooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function progress(p: ImportProgress): void {
  if (p.stage === 'parsing') process.stderr.write(`  read ${p.rows} rows…\n`);
  else if (p.stage === 'parsed') process.stderr.write(`  ${p.rows} data rows (${p.format}); validating…\n`);
  else process.stderr.write(`  ${p.rows} valid rows; checking against stock${p.rows >= 5_000 ? ' (this takes a few seconds)' : ''}…\n`);
}

function report(err: ApiError): void {
  process.stderr.write(`stockwire import: ${err.code}: ${err.message}\n`);
  const details = err.details as { errors?: { row: number; column?: string; code: string; message: string }[]; error_count?: number; truncated?: boolean } | undefined;
  if (!details?.errors) return;
  for (const e of details.errors) process.stderr.write(`  row ${e.row}${e.column ? ` [${e.column}]` : ''}: ${e.message} (${e.code})\n`);
  if (details.truncated) process.stderr.write(`  … and ${details.error_count! - details.errors.length} more errors\n`);
}

await runCli('import', async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'dry-run': { type: 'boolean', default: false }, location: { type: 'string' }, actor: { type: 'string' } },
  });
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const bytes = await readFileLimited(file, DEFAULT_IMPORT_LIMITS.maxFileBytes).catch((err: unknown) => {
    if (err instanceof ApiError) throw err;
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  });
  const database = await resolveDatabase({ dataDir: dataDirFromEnv() });
  const { db, close } = openDatabase({ url: database.url, max: 2, applicationName: 'stockwire-import' });
  try {
    const importStockFile = createStockImporter({ db, runCommand: createCommandRunner({ db }), clock: () => new Date() });
    const actor = values.actor ?? `cli:${os.userInfo().username}`;
    const started = Date.now();
    process.stderr.write(`importing ${file}${values['dry-run'] ? ' (dry run)' : ''} as ${actor}\n`);
    const { body } = await importStockFile({ actor, requestId: `cli-${randomUUID()}` }, {
      bytes, dryRun: values['dry-run'], location: values.location, onProgress: progress,
    });
    const verb = body.dry_run ? 'would change' : 'changed';
    process.stdout.write(`import ${body.import_id}: ${body.rows} rows, ${verb} ${body.applied}, ${body.unchanged} unchanged` +
      `${body.dry_run ? ' — dry run, nothing written' : ''} (${Date.now() - started} ms)\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    report(err);
    return 1;
  } finally {
    await close();
    await database.stop();
  }
});
