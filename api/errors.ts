/**
 * The API's error vocabulary. Every failure a caller can cause is an ApiError with an HTTP status, a
 * machine-readable code and a message saying what to do; app.onError renders it as
 * { error: { code, message, details } }. Driver errors are translated once, here.
 */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 503,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class NotFound extends ApiError {
  constructor(entity: string, id: string) {
    super(404, 'not_found', `${entity} ${id} does not exist`, { entity, id });
  }
}

export interface ShortLine {
  sku: string;
  location: string;
  requested: number;
  available: number;
  /** the order lines' skus (a bundle or the product itself) that needed this component */
  line_skus: string[];
}

export class InsufficientStock extends ApiError {
  constructor(readonly lines: ShortLine[]) {
    super(409, 'insufficient_stock', `not enough sellable stock for ${lines.map((l) => l.sku).join(', ')}`, { lines });
  }
}

export class VersionConflict extends ApiError {
  constructor(current: unknown) {
    super(409, 'version_conflict', 'the row changed since you read it; re-read it and retry with its current version', {
      current,
    });
  }
}

export class InvalidTransition extends ApiError {
  constructor(orderId: string, from: string, to: string) {
    super(409, 'invalid_transition', `order ${orderId} is ${from}; it cannot become ${to}`, { order_id: orderId, status: from, requested: to });
  }
}

export class Unprocessable extends ApiError {
  constructor(code: string, message: string, details?: unknown) {
    super(422, code, message, details);
  }
}

const STOCK_CONSTRAINTS = new Set(['stock_levels_quantities', 'lots_quantities']);

interface PgError {
  code?: string;
  constraint?: string;
  detail?: string;
  message: string;
}

function isPgError(err: unknown): err is PgError {
  return typeof err === 'object' && err !== null && typeof (err as PgError).code === 'string' && (err as PgError).code!.length === 5;
}

/** Maps a Postgres error caused by the request's content to an ApiError; undefined for server faults. */
export function translateDbError(err: unknown): ApiError | undefined {
  if (!isPgError(err)) return undefined;
  switch (err.code) {
    case '23514': // check_violation
      if (err.constraint && STOCK_CONSTRAINTS.has(err.constraint)) {
        // the schema's last line of defence against negative or over-reserved stock
        return new ApiError(409, 'stock_constraint', `the change would break a stock rule (${err.constraint})`, { constraint: err.constraint });
      }
      return new ApiError(422, 'constraint_violation', `a value breaks a rule of the schema (${err.constraint ?? 'check'})`, { constraint: err.constraint });
    case '23505':
      return new ApiError(409, 'already_exists', 'a row with the same key already exists', { constraint: err.constraint });
    case '23503':
      return new ApiError(422, 'unknown_reference', 'the request refers to something that does not exist', {
        constraint: err.constraint,
      });
    case '22003':
      return new ApiError(422, 'quantity_out_of_range', 'the resulting quantity is beyond what a stock row can hold', { reason: err.message });
    case '22P02':
    case '22007':
    case '22008':
      return new ApiError(400, 'validation_failed', 'a value is out of range or malformed', { reason: err.message });
    default:
      return undefined;
  }
}

/** SQLSTATEs of a server that is going away or not there yet: 08 connection exceptions, 57P01–57P03 shutdowns, 53300 too many connections. */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300)$/;
const UNAVAILABLE_SYSCALL = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
/** node-postgres' own messages for a connection that died under a query or a client lent out from the pool */
const UNAVAILABLE_MESSAGE = /^(Connection terminated|Client has encountered a connection error and is not queryable|timeout exceeded when trying to connect)/;

/**
 * A 503 `database_unavailable` when `err` (or its cause) says Postgres is unreachable or restarting — not
 * a fault of the request, and retrying shortly helps; undefined otherwise. (Before, a Postgres restart
 * answered 500 `internal` for every request in flight; found by test/faults.)
 */
export function databaseUnavailable(err: unknown): ApiError | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    const unavailable = (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_SYSCALL.has(code)))
      || (typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message));
    if (unavailable) {
      return new ApiError(503, 'database_unavailable', 'the database is unreachable or restarting; retry in a moment (with the same Idempotency-Key)', undefined, { cause: err });
    }
  }
  return undefined;
}
