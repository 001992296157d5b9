/**
 * What the API's handlers share: the dependencies wired by the entry point (AppDeps) and the per-request
 * values Hono carries on the context (AppEnv).
 */
import type { Hook } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.ts';
import type { Principal, TokenVerifier } from './auth/tokens.ts';
import type { RunCommand } from './domain/command-runner.ts';
import type { PiiCipher } from './domain/pii-cipher.ts';

export interface AppDeps {
  db: Kysely<Database>;
  log: Logger;
  verifyToken: TokenVerifier;
  cipher: PiiCipher;
  clock: () => Date;
  settings: { reservationTtlSeconds: number; defaultLocation: string };
}

export interface RouteDeps extends AppDeps {
  runCommand: RunCommand;
  /** renders request-validation failures as 400 validation_failed */
  validationHook: Hook<unknown, AppEnv, string, undefined>;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    principal: Principal;
    idempotencyKey: string | undefined;
  };
}
