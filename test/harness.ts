/**
 * One test file's world: a fresh database cloned from the migrated template, the real Hono app wired to
 * it (in-process, called through app.request), a controllable clock, a token per role, and helpers to
 * build fixtures through the API itself.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { createApp } from '../api/app.ts';
import { ROLES, type Role } from '../api/auth/permissions.ts';
import { createTokenVerifier, issueToken } from '../api/auth/tokens.ts';
import { createCommandRunner } from '../api/domain/command-runner.ts';
import { createPiiCipher } from '../api/domain/pii-cipher.ts';
import { ensureDatabase } from '../db/cluster.ts';
import { openDatabase } from '../db/connection.ts';

export const TEST_TOKEN_SETTINGS = { secret: 'test-secret-test-secret-test-secret!', issuer: 'stockwire', audience: 'stockwire-api' };
export const TEST_PII_KEYS = [{ kid: 't1', key: Buffer.alloc(32, 7) }];

export interface CallResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface CallOptions {
  role?: Role;
  body?: unknown;
  headers?: Record<string, string>;
  token?: string | null;
}

export class TestClock {
  constructor(private current = new Date('2026-12-03T12:00:00Z')) {}
  now = () => new Date(this.current);
  advance(ms: number) {
    this.current = new Date(this.current.getTime() + ms);
  }
}

/** Creates a fresh database and app for one test file; call close() in afterAll. */
export async function createHarness(props: { poolMax?: number; ttlSeconds?: number; log?: Logger } = {}) {
  const adminUrl = inject('pgAdminUrl');
  const name = `t_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const url = await ensureDatabase(adminUrl, name, 'stockwire_template');
  const database = openDatabase({ url, max: props.poolMax ?? 20 });
  const clock = new TestClock();
  const log = props.log ?? pino({ level: 'silent' });
  const app = createApp({
    db: database.db,
    pool: database.pool,
    log,
    clock: clock.now,
    verifyToken: createTokenVerifier(TEST_TOKEN_SETTINGS),
    cipher: createPiiCipher(TEST_PII_KEYS),
    settings: { reservationTtlSeconds: props.ttlSeconds ?? 900, defaultLocation: 'MAIN' },
  });
  const tokens = Object.fromEntries(
    await Promise.all(ROLES.map(async (role) => [role, await issueToken(TEST_TOKEN_SETTINGS, { subject: `test-${role}`, roles: [role] })])),
  ) as Record<Role, string>;

  /** Calls the app in-process as `role` (admin by default). */
  async function call<T = any>(method: string, path: string, options: CallOptions = {}): Promise<CallResult<T>> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? tokens[options.role ?? 'admin'] : options.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const res = await app.request(path, { method, headers, body });
    const text = await res.text();
    // JSON answers are parsed; others (the CSV export) come back as text
    const json = /json/.test(res.headers.get('content-type') ?? '');
    return { status: res.status, body: text ? (json ? JSON.parse(text) : text) : undefined, headers: res.headers };
  }

  /** Fails the test with the response body unless the status matches. */
  async function ok<T = any>(expected: number, method: string, path: string, options: CallOptions = {}): Promise<T> {
    const res = await call<T>(method, path, options);
    if (res.status !== expected) throw new Error(`${method} ${path} → ${res.status}, expected ${expected}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  const fixtures = {
    async location(code: string, name = code) {
      return ok(201, 'POST', '/v1/locations', { body: { code, name } });
    },
    async product(sku: string, extra: { category?: string; lot_tracked?: boolean; components?: { sku: string; qty: number }[]; reorder_point?: number } = {}) {
      const category = extra.category ?? (extra.components ? 'bundle' : extra.lot_tracked ? 'beauty' : 'sheets');
      return ok(201, 'POST', '/v1/products', { body: { sku, name: `Product ${sku}`, category, ...extra } });
    },
    async receive(sku: string, location: string, qty: number, lot?: { lot_code: string; expires_on: string }) {
      return ok(201, 'POST', '/v1/receipts', { body: { sku, location, qty, ...lot } });
    },
    async order(lines: { sku: string; qty: number }[], extra: Record<string, unknown> = {}) {
      return ok(201, 'POST', '/v1/orders', { role: 'order-system', body: { lines, ...extra } });
    },
  };

  return {
    url,
    db: database.db,
    pool: database.pool,
    app,
    clock,
    tokens,
    log,
    runCommand: createCommandRunner({ db: database.db }),
    call,
    ok,
    fixtures,
    async close() {
      await database.close();
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export type Harness = Awaited<ReturnType<typeof createHarness>>;

/** Days from the harness clock's today, as YYYY-MM-DD. */
export function dayFrom(clock: TestClock, days: number): string {
  return new Date(clock.now().getTime() + days * 86_400_000).toISOString().slice(0, 10);
}
