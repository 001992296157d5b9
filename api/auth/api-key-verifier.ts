/**
 * Turns a presented API key into a principal, from one indexed lookup per request (by key_prefix) and a
 * constant-time compare of the secret's hash. Nothing positive is cached, so a revoked key fails on the
 * very next request. Unknown, tampered, revoked and expired keys all fail alike (InvalidApiKey, one
 * message) so the answer is no oracle. last_used_at is written at most once a minute per key, after the
 * response path has moved on (fire-and-forget; a failed write is logged, never fails the request).
 */
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { SqlRunner } from '../../db/sql-runner.ts';
import type { RequestPrincipal } from '../context.ts';
import { parseCidrList } from '../net/cidr.ts';
import { parseApiKey, secretMatches } from './api-key-format.ts';
import { ROLES, type Role } from './permissions.ts';

export class InvalidApiKey extends Error {
  readonly code = 'invalid_api_key';
  constructor() {
    super('the API key is unknown, revoked or expired; ask an admin for a new one (POST /v1/api-keys)');
  }
}

export class AddressNotAllowed extends Error {
  readonly code = 'ip_not_allowed';
  constructor(readonly address: string | null) {
    super(`this API key may not be used from ${address ?? 'an unknown address'}; its allowed_cidrs must list it`);
  }
}

interface KeyRow {
  id: string;
  name: string;
  secret_hash: Buffer;
  roles: string[];
  locations: string[] | null;
  allowed_cidrs: string[] | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

/** Creates the verifier; `run` executes the lookup as a named prepared statement. */
export function createApiKeyVerifier(props: { run: SqlRunner; log: Logger; clock: () => Date; touchAfterMs?: number }) {
  const touchAfterMs = props.touchAfterMs ?? 60_000;
  const log = props.log.child({ component: 'api-keys' });

  function touch(id: string, now: Date) {
    const cutoff = new Date(now.getTime() - touchAfterMs);
    // the WHERE keeps concurrent requests (and other replicas) from writing the row more than once a minute
    props.run(sql`UPDATE api_keys SET last_used_at = ${now}
                   WHERE id = ${id} AND (last_used_at IS NULL OR last_used_at < ${cutoff})`)
      .catch((err: unknown) => log.warn({ err, apiKeyId: id }, 'could not record last_used_at'));
  }

  /** The principal for `presented` used from `address`; throws InvalidApiKey or AddressNotAllowed. */
  return async function verifyApiKey(presented: string, address: string | null): Promise<RequestPrincipal> {
    const parts = parseApiKey(presented);
    if (!parts) throw new InvalidApiKey();
    const [row] = await props.run(sql<KeyRow>`
      SELECT id, name, secret_hash, roles, locations, allowed_cidrs, expires_at, revoked_at, last_used_at
        FROM api_keys WHERE key_prefix = ${parts.prefix}`);
    const now = props.clock();
    // compare even when the prefix is unknown, so a miss and a wrong secret cost the same
    if (!secretMatches(row?.secret_hash, parts.secret) || !row) throw new InvalidApiKey();
    if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at.getTime() <= now.getTime())) throw new InvalidApiKey();
    let allowedCidrs;
    if (row.allowed_cidrs) {
      try {
        allowedCidrs = parseCidrList(row.allowed_cidrs);
      } catch (err) {
        log.error({ err, apiKeyId: row.id }, 'stored allowed_cidrs do not parse; refusing the key');
        throw new InvalidApiKey();
      }
      if (!address || !allowedCidrs.has(address)) throw new AddressNotAllowed(address);
    }
    if (row.last_used_at === null || now.getTime() - row.last_used_at.getTime() >= touchAfterMs) touch(row.id, now);
    return {
      subject: `key:${row.name}`,
      roles: row.roles.filter((r): r is Role => (ROLES as readonly string[]).includes(r)),
      apiKeyId: row.id,
      locations: row.locations ?? undefined,
      allowedCidrs,
    };
  };
}

export type ApiKeyVerifier = ReturnType<typeof createApiKeyVerifier>;
