/**
 * Runs one write command as one transaction: the command's own rows, its audit row and (when the caller
 * sent an Idempotency-Key) the stored response all commit together or not at all. A retried request with
 * the same key and body gets the first answer back; the same key with another body is refused with 409.
 * Only successful answers are stored: a refused command (409 insufficient_stock…) may be retried as is.
 */
import { createHash } from 'node:crypto';
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { canonicalJson } from '../../lib/canonical-json.ts';
import { ApiError, translateDbError } from '../errors.ts';

export interface CommandMeta {
  actor: string;
  requestId: string;
  ip?: string | null;
  idempotency?: { key: string; requestHash: string } | undefined;
}

export interface AuditEntry {
  action: string;
  entity: string;
  entityId: string;
  before?: unknown;
  after?: unknown;
}

export interface CommandOutcome<T> {
  status: 200 | 201;
  body: T;
  audit: AuditEntry;
}

export interface CommandResult<T> {
  status: number;
  body: T;
  replayed: boolean;
}

export type CommandTx = Transaction<Database>;

class DuplicateRequest extends Error {}

/** Canonical hash of what a request asks for: method, path and validated body, key order ignored. */
export function hashRequest(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${canonicalJson(body)}`).digest('hex');
}

/** Creates the runner bound to a database. */
export function createCommandRunner(props: { db: Kysely<Database> }) {
  const { db } = props;

  async function storedAnswer<T>(meta: CommandMeta): Promise<CommandResult<T> | undefined> {
    if (!meta.idempotency) return undefined;
    const row = await db
      .selectFrom('idempotency_keys')
      .select(['request_hash', 'status_code', 'response'])
      .where('actor', '=', meta.actor)
      .where('key', '=', meta.idempotency.key)
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.request_hash !== meta.idempotency.requestHash) {
      throw new ApiError(409, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request; use a new key', {
        key: meta.idempotency.key,
      });
    }
    return { status: row.status_code, body: row.response as T, replayed: true };
  }

  async function record(trx: CommandTx, meta: CommandMeta, outcome: CommandOutcome<unknown>) {
    const a = outcome.audit;
    const audit = sql`INSERT INTO audit_log (actor, action, entity, entity_id, request_id, ip, before, after)
      VALUES (${meta.actor}, ${a.action}, ${a.entity}, ${a.entityId}, ${meta.requestId}, ${meta.ip ?? null},
              ${json(a.before)}, ${json(a.after)})`;
    if (!meta.idempotency) {
      await audit.execute(trx);
      return;
    }
    const { rows } = await sql`WITH audit AS (${audit})
      INSERT INTO idempotency_keys (actor, key, request_hash, status_code, response)
      VALUES (${meta.actor}, ${meta.idempotency.key}, ${meta.idempotency.requestHash}, ${outcome.status}, ${json(outcome.body)})
      ON CONFLICT DO NOTHING RETURNING 1 AS stored`.execute(trx);
    if (rows.length === 0) throw new DuplicateRequest(); // a concurrent twin committed first
  }

  /** Runs `command` in a transaction with audit and idempotency; translates driver errors once. */
  async function runCommand<T>(meta: CommandMeta, command: (trx: CommandTx) => Promise<CommandOutcome<T>>): Promise<CommandResult<T>> {
    const stored = await storedAnswer<T>(meta);
    if (stored) return stored;
    try {
      const outcome = await db.transaction().execute(async (trx) => {
        const result = await command(trx);
        await record(trx, meta, result);
        return result;
      });
      return { status: outcome.status, body: outcome.body, replayed: false };
    } catch (err) {
      if (err instanceof DuplicateRequest) {
        const twin = await storedAnswer<T>(meta);
        if (twin) return twin;
      }
      throw translateDbError(err) ?? err;
    }
  }

  /**
   * Single-statement mode for the hottest path: `attempt` runs ONE autocommit statement that embeds
   * `recordCtes(outcome, gate)` (audit row + stored answer, written only when the CTE named `gate`
   * produced a row), so row locks are held for one statement instead of several round trips. It returns
   * the outcome when the statement wrote, or undefined to give up (the caller then retries or falls back).
   */
  async function runStatement<T>(
    meta: CommandMeta,
    attempt: (recordCtes: (outcome: CommandOutcome<T>, gate: string) => RawBuilder<unknown>) => Promise<CommandOutcome<T> | undefined>,
  ): Promise<CommandResult<T> | undefined> {
    const stored = await storedAnswer<T>(meta);
    if (stored) return stored;
    const recordCtes = (outcome: CommandOutcome<T>, gate: string) => {
      const a = outcome.audit;
      const when = sql`WHERE EXISTS (SELECT 1 FROM ${sql.table(gate)})`;
      const audit = sql`audit_row AS (
        INSERT INTO audit_log (actor, action, entity, entity_id, request_id, ip, before, after)
        SELECT ${meta.actor}, ${a.action}, ${a.entity}, ${a.entityId}, ${meta.requestId}, ${meta.ip ?? null}, ${json(a.before)}::jsonb, ${json(a.after)}::jsonb ${when})`;
      if (!meta.idempotency) return audit;
      // no ON CONFLICT: a concurrent twin makes the whole statement fail on the primary key, writing nothing
      return sql`${audit}, stored_answer AS (
        INSERT INTO idempotency_keys (actor, key, request_hash, status_code, response)
        SELECT ${meta.actor}, ${meta.idempotency.key}, ${meta.idempotency.requestHash}, ${outcome.status}, ${json(outcome.body)}::jsonb ${when})`;
    };
    try {
      const outcome = await attempt(recordCtes);
      return outcome && { status: outcome.status, body: outcome.body, replayed: false };
    } catch (err) {
      if ((err as { constraint?: string }).constraint === 'idempotency_keys_pkey') {
        const twin = await storedAnswer<T>(meta);
        if (twin) return twin;
      }
      throw translateDbError(err) ?? err;
    }
  }

  return Object.assign(runCommand, { statement: runStatement });
}

export type RunCommand = ReturnType<typeof createCommandRunner>;

function json(value: unknown) {
  return value === undefined ? null : JSON.stringify(value);
}
