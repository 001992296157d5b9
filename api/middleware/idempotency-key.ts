/**
 * Reads the Idempotency-Key header of a POST and checks its shape; the command runner does the rest
 * (stores the answer in the command's transaction and replays it).
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';

const KEY_SHAPE = /^[\x21-\x7e]{1,200}$/;

export function idempotencyKey(): MiddlewareHandler<AppEnv> {
  return async function idempotencyKeyMiddleware(c, next) {
    const key = c.req.method === 'POST' ? c.req.header('idempotency-key') : undefined;
    if (key !== undefined && !KEY_SHAPE.test(key)) {
      throw new ApiError(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1–200 printable ASCII characters');
    }
    c.set('idempotencyKey', key);
    await next();
  };
}
