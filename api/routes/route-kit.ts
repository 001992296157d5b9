/**
 * Helpers every route module uses: a route definition that names its permission (checked by middleware
 * and published in the OpenAPI document as x-stockwire-action), and the glue from a request to the
 * command runner and back to a response.
 */
import { createRoute, type RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Action } from '../auth/permissions.ts';
import type { AppEnv } from '../context.ts';
import { hashRequest, type CommandMeta, type CommandOutcome, type CommandResult, type CommandTx, type RunCommand } from '../domain/command-runner.ts';
import { authorize } from '../middleware/auth.ts';
import { adminActionNetwork } from '../middleware/ip-allowlist.ts';
import { socketAddress } from '../net/client-ip.ts';
import { ApiError } from '../errors.ts';
import { errorResponses } from './schemas.ts';

/** A route guarded by `action`; its OpenAPI operation lists the action and the standard error responses. */
export function protectedRoute<R extends Omit<RouteConfig, 'middleware' | 'security'>>(action: Action, config: R) {
  return createRoute({
    ...config,
    // the network check first: an admin-only action from outside ADMIN_ALLOWED_CIDRS is refused whoever asks
    middleware: [adminActionNetwork(action), authorize(action)] as const,
    security: [{ bearerAuth: [] }],
    'x-stockwire-action': action,
    responses: { ...errorResponses, ...config.responses },
  } as R & { middleware: [ReturnType<typeof authorize>, ReturnType<typeof authorize>]; security: [{ bearerAuth: [] }] });
}

/** What the command runner needs to know about this request. */
export function commandMeta(c: Context<AppEnv>, body: unknown): CommandMeta {
  const key = c.get('idempotencyKey');
  return {
    actor: c.get('principal').subject,
    requestId: c.get('requestId'),
    // the clientAddress middleware's answer (behind trusted proxies: the real client), else the socket peer
    ip: c.get('clientIp') ?? socketAddress(c),
    idempotency: key ? { key, requestHash: hashRequest(c.req.method, c.req.path, body) } : undefined,
  };
}

/** What a domain command needs from the request: its transaction, actor, request id and the time. */
export interface RequestCommandContext {
  trx: CommandTx;
  actor: string;
  requestId: string;
  now: Date;
}

/**
 * Runs a domain command for this request through the command runner (one transaction with audit and
 * idempotency) and marks a replayed answer.
 */
export async function executeCommand<T>(
  c: Context<AppEnv>,
  deps: { runCommand: RunCommand; clock: () => Date },
  body: unknown,
  command: (ctx: RequestCommandContext) => Promise<CommandOutcome<T>>,
): Promise<CommandResult<T>> {
  const result = await deps.runCommand(commandMeta(c, body), (trx) =>
    command({ trx, actor: c.get('principal').subject, requestId: c.get('requestId'), now: deps.clock() }));
  replayHeader(c, result);
  return result;
}

/** Marks replayed answers so callers can tell a retry from a first execution. */
export function replayHeader(c: Context<AppEnv>, result: CommandResult<unknown>): void {
  if (result.replayed) c.header('Idempotent-Replayed', 'true');
}

/**
 * For answers that carry a secret shown once (API keys, webhook secrets): the stored answer of an
 * idempotent retry would hold the secret in clear, so such a request refuses an Idempotency-Key.
 */
export function refuseIdempotencyKey(c: Context<AppEnv>, advice: string): void {
  if (c.get('idempotencyKey') !== undefined) {
    throw new ApiError(400, 'idempotency_not_supported', `the secret in this answer is never stored, so it cannot be replayed: send no Idempotency-Key, and ${advice}`);
  }
}
