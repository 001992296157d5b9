/**
 * Stock-count imports and the stock export. POST /v1/imports takes a CSV or XLSX file (multipart field
 * `file`, or the file as the raw body) and applies it atomically or refuses it with every row error;
 * GET /v1/exports/stock.csv streams the stock rows as formula-safe CSV. The upload is read here, after
 * authorization, with its own size limit (the app's JSON body limit does not apply to this route).
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv, RouteDeps } from '../context.ts';
import { stockCsvStream } from '../domain/stock-export.ts';
import { FileTooLarge } from '../domain/stock-import/import-errors.ts';
import { DEFAULT_IMPORT_LIMITS } from '../domain/stock-import/limits.ts';
import { createStockImporter, importFingerprint } from '../domain/stock-import/stock-import.ts';
import { ApiError, NotFound } from '../errors.ts';
import { commandMeta, protectedRoute, replayHeader } from './route-kit.ts';
import { IdempotencyHeader, jsonResponse, LocationCode } from './schemas.ts';

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
/** content types whose body is the file itself (the bytes decide CSV or XLSX, not the header) */
const RAW_FILE_TYPES = new Set(['text/csv', 'application/csv', 'text/plain', XLSX_TYPE, 'application/octet-stream']);
/** room for the multipart envelope around the file */
const MULTIPART_OVERHEAD = 64 * 1024;

const BoolText = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const ImportQuery = z.object({
  dry_run: BoolText.optional().openapi({ description: 'validate and report, apply nothing' }),
  location: LocationCode.optional().openapi({ description: 'every row is at this location (the file may omit the location column)' }),
});

const RowErrorSchema = z.object({ row: z.number().int(), column: z.string().optional(), code: z.string(), message: z.string() }).openapi('ImportRowError');

const ImportResult = z.object({
  import_id: z.string().uuid(),
  dry_run: z.boolean(),
  format: z.enum(['csv', 'xlsx']),
  rows: z.number().int().openapi({ description: 'data rows in the file' }),
  applied: z.number().int().openapi({ description: 'rows whose count differed from stock: one ledger row (reason import) each' }),
  unchanged: z.number().int().openapi({ description: 'rows whose count equalled stock: nothing written' }),
  errors: z.array(RowErrorSchema).openapi({ description: 'always empty on success; a file with errors is answered 422 import_invalid with details.errors' }),
}).openapi('ImportResult');

const fileSchema = { type: 'string', format: 'binary' } as const;

const routes = {
  importStock: protectedRoute('stock:import', {
    method: 'post', path: '/imports',
    summary: 'Import a stock count (CSV or XLSX: sku, location, counted|on_hand, optional lot_code, note); all rows apply atomically or none',
    description: `Header names are case-insensitive; unknown columns are ignored. Limits: ${DEFAULT_IMPORT_LIMITS.maxFileBytes} bytes (413 file_too_large), ` +
      `${DEFAULT_IMPORT_LIMITS.maxRows} data rows (413 too_many_rows). Refused: non-CSV/XLSX content (415 unsupported_file), macro workbooks (422 macro_file), ` +
      `zip bombs (422 zip_bomb). Any row error → 422 import_invalid with details.errors [{ row, column, code, message }] (row numbers as in the file, header = 1) and nothing applied.`,
    request: {
      query: ImportQuery,
      headers: IdempotencyHeader,
      body: {
        required: true,
        content: {
          'multipart/form-data': {
            schema: {
              type: 'object', required: ['file'],
              properties: { file: fileSchema, dry_run: { type: 'string', enum: ['true', 'false'] }, location: { type: 'string' } },
            },
          },
          'text/csv': { schema: { type: 'string' } },
          [XLSX_TYPE]: { schema: fileSchema },
        },
      },
    },
    responses: {
      200: jsonResponse('dry run: what the import would do', ImportResult),
      201: jsonResponse('the import was applied', ImportResult),
      413: jsonResponse('file_too_large or too_many_rows', z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })),
      415: jsonResponse('unsupported_media_type or unsupported_file', z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })),
    },
  }),
  exportStock: protectedRoute('stock:export', {
    method: 'get', path: '/exports/stock.csv', summary: 'All stock rows as CSV (formula-looking text neutralised with a leading apostrophe)',
    request: { query: z.object({ location: LocationCode.optional() }) },
    responses: {
      200: { description: `CSV with the columns sku,name,category,location,on_hand,reserved,available,reorder_point,nearest_expiry,updated_at`, content: { 'text/csv': { schema: z.string() } } },
    },
  }),
};

/** Reads the request body, refusing it with 413 as soon as it passes `limit` bytes. */
async function readBody(c: Context<AppEnv>, limit: number, fileLimit: number): Promise<Buffer> {
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > limit) throw new FileTooLarge(fileLimit);
  const body = c.req.raw.body;
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new FileTooLarge(fileLimit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** The uploaded file and the form's options, from multipart/form-data or a raw file body. */
interface Upload {
  bytes: Buffer;
  dryRun?: boolean | undefined;
  location?: string | undefined;
}

async function readUpload(c: Context<AppEnv>, maxFileBytes: number): Promise<Upload> {
  const contentType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (contentType === 'multipart/form-data') {
    const raw = await readBody(c, maxFileBytes + MULTIPART_OVERHEAD, maxFileBytes);
    let form: FormData;
    try {
      form = await new Response(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length) as ArrayBuffer, { headers: { 'content-type': c.req.header('content-type')! } }).formData();
    } catch {
      throw new ApiError(400, 'malformed_request', 'the multipart body could not be read');
    }
    const file = form.get('file');
    if (!(file instanceof Blob)) {
      throw new ApiError(400, 'validation_failed', 'send the file in a multipart field named "file"', { target: 'form', issues: [{ path: 'file', message: 'required' }] });
    }
    if (file.size > maxFileBytes) throw new FileTooLarge(maxFileBytes);
    const fields = z.object({ dry_run: BoolText.optional(), location: LocationCode.optional() }).safeParse({
      dry_run: form.get('dry_run') ?? undefined, location: form.get('location') || undefined,
    });
    if (!fields.success) {
      const issues = fields.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
      throw new ApiError(400, 'validation_failed', `invalid form: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, { target: 'form', issues });
    }
    return { bytes: Buffer.from(await file.arrayBuffer()), dryRun: fields.data.dry_run, location: fields.data.location };
  }
  if (RAW_FILE_TYPES.has(contentType)) return { bytes: await readBody(c, maxFileBytes, maxFileBytes) };
  throw new ApiError(415, 'unsupported_media_type', `send the file as multipart/form-data (field "file"), text/csv or ${XLSX_TYPE}`, {
    content_type: contentType || null,
  });
}

export function importRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });
  const limits = DEFAULT_IMPORT_LIMITS;
  const importStockFile = createStockImporter({ db: deps.db, runCommand: deps.runCommand, clock: deps.clock, limits });

  app.openapi(routes.importStock, async (c) => {
    const query = c.req.valid('query');
    const upload = await readUpload(c, limits.maxFileBytes);
    const file = { bytes: upload.bytes, dryRun: Boolean(query.dry_run || upload.dryRun), location: upload.location ?? query.location };
    const result = await importStockFile(commandMeta(c, importFingerprint(file)), file);
    replayHeader(c, result);
    return c.json(result.body, result.status === 201 ? 201 : 200);
  });

  app.openapi(routes.exportStock, async (c) => {
    const { location } = c.req.valid('query');
    if (location) {
      const found = await deps.db.selectFrom('locations').select('code').where('code', '=', location).executeTakeFirst();
      if (!found) throw new NotFound('location', location);
    }
    const log = c.get('log');
    const stream = stockCsvStream({ db: deps.db, location, onError: (err) => log.error({ err }, 'stock export failed mid-stream') });
    const day = deps.clock().toISOString().slice(0, 10);
    return c.body(stream, 200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="stock${location ? `-${location}` : ''}-${day}.csv"`,
      'cache-control': 'no-store',
    });
  });

  return app;
}
