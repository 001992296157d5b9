/**
 * Shared zod schemas: request pieces reused across routes and the response shapes the OpenAPI document
 * publishes. Request schemas sit next to their route; these are the common ones.
 */
import { z } from '@hono/zod-openapi';

export const Sku = z.string().regex(/^[A-Z0-9][A-Z0-9._-]{0,63}$/, 'upper-case letters, digits, . _ -').openapi({ example: 'SHEET-QUEEN-WHITE' });
export const LocationCode = z.string().regex(/^[A-Z0-9][A-Z0-9_-]{0,31}$/, 'upper-case letters, digits, _ -').openapi({ example: 'MAIN' });
export const LotCode = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$/).openapi({ example: 'L2026-11A' });
export const Quantity = z.number().int().positive().max(1_000_000);
export const IsoDate = z.iso.date().openapi({ example: '2027-06-30' });
export const Note = z.string().trim().min(1).max(500);
export const Reason = z
  .enum(['damaged', 'lost', 'found', 'theft', 'correction', 'count', 'expired', 'returned', 'sample', 'other'])
  .openapi({ description: 'why the stock changed' });

export const ErrorBody = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi('Error');

export const StockRow = z
  .object({
    sku: z.string(),
    location: z.string(),
    on_hand: z.number().int(),
    reserved: z.number().int(),
    available: z.number().int(),
    version: z.number().int(),
    updated_at: z.string(),
  })
  .openapi('StockRow');

export const LotRow = z.object({
  id: z.string(),
  lot_code: z.string(),
  expires_on: z.string(),
  on_hand: z.number().int(),
  reserved: z.number().int(),
});

export const StockChange = z
  .object({ stock: StockRow, lot: LotRow.optional(), delta: z.number().int() })
  .openapi('StockChange');

export const Product = z
  .object({
    sku: z.string(),
    name: z.string(),
    category: z.enum(['sheets', 'linens', 'beauty', 'bundle']),
    kind: z.enum(['simple', 'bundle']),
    lot_tracked: z.boolean(),
    reorder_point: z.number().int(),
    reorder_qty: z.number().int(),
    active: z.boolean(),
    version: z.number().int(),
    updated_at: z.string(),
    components: z.array(z.object({ sku: z.string(), qty: z.number().int() })).optional(),
  })
  .openapi('Product');

export const Order = z
  .object({
    id: z.string().uuid(),
    external_ref: z.string().nullable(),
    status: z.enum(['reserved', 'confirmed', 'cancelled', 'payment_failed', 'expired']),
    location: z.string(),
    expires_at: z.string(),
    version: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
    lines: z.array(z.object({ line_no: z.number().int(), sku: z.string(), qty: z.number().int() })),
    reservations: z.array(z.object({ line_no: z.number().int(), sku: z.string(), lot_id: z.string().nullable(), qty: z.number().int() })),
    customer: z.object({ email: z.string().optional(), phone: z.string().optional() }).nullable().optional(),
  })
  .openapi('Order');

/** Standard error responses every protected route can give. */
export const errorResponses = {
  400: { description: 'invalid request', content: { 'application/json': { schema: ErrorBody } } },
  401: { description: 'missing or invalid bearer token', content: { 'application/json': { schema: ErrorBody } } },
  403: { description: 'role not allowed, or the client address is outside an allowlist (ip_not_allowed)', content: { 'application/json': { schema: ErrorBody } } },
  404: { description: 'not found', content: { 'application/json': { schema: ErrorBody } } },
  409: { description: 'conflict with current state', content: { 'application/json': { schema: ErrorBody } } },
  422: { description: 'refers to something unusable', content: { 'application/json': { schema: ErrorBody } } },
  413: { description: 'request body too large', content: { 'application/json': { schema: ErrorBody } } },
  429: { description: 'over the rate limit (rate_limited); see Retry-After and RateLimit-* headers', content: { 'application/json': { schema: ErrorBody } } },
  503: { description: 'a dependency is unavailable (e.g. jwks_unavailable); retry after Retry-After', content: { 'application/json': { schema: ErrorBody } } },
} as const;

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { body: { content: { 'application/json': { schema } }, required: true } } as const;
}

export function jsonResponse<T extends z.ZodType>(description: string, schema: T) {
  return { description, content: { 'application/json': { schema } } } as const;
}

export const IdempotencyHeader = z.object({
  'idempotency-key': z.string().optional().openapi({ description: 'retry-safe key: the same key and body return the first answer' }),
});
