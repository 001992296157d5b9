/**
 * An in-process fake of PagerDuty's Events API v2, `POST /v2/enqueue`, validating like the real one:
 * routing_key (string) and event_action (trigger | acknowledge | resolve) required; a trigger needs
 * payload.summary (≤ 1024 chars), payload.source and payload.severity (critical | error | warning | info),
 * custom_details an object when present; acknowledge and resolve need dedup_key; dedup_key ≤ 255 chars.
 * Accepted → 202 `{ status: 'success', message: 'Event processed', dedup_key }`; invalid → 400
 * `{ status: 'invalid event', message: 'Event object is invalid', errors: [...] }`. On demand the next
 * calls fail with a given status (429 with Retry-After). Accepted events are recorded.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'acknowledge' | 'resolve';
  dedup_key?: string;
  payload?: { summary: string; source: string; severity: string; timestamp?: string; component?: string; group?: string; class?: string; custom_details?: Record<string, unknown> };
}

const SEVERITIES = ['critical', 'error', 'warning', 'info'];

/** The validation errors of an Events v2 body (empty = valid). */
export function eventErrors(e: any): string[] {
  const errors: string[] = [];
  if (!e || typeof e !== 'object') return ['Event object is invalid'];
  if (typeof e.routing_key !== 'string' || !e.routing_key) errors.push("'routing_key' is missing or blank");
  if (!['trigger', 'acknowledge', 'resolve'].includes(e.event_action)) errors.push("'event_action' is missing or invalid");
  if (e.dedup_key !== undefined && (typeof e.dedup_key !== 'string' || e.dedup_key.length > 255)) errors.push("'dedup_key' must be a string of at most 255 characters");
  if (e.event_action === 'trigger') {
    const p = e.payload;
    if (!p || typeof p !== 'object') errors.push("'payload' is missing");
    else {
      if (typeof p.summary !== 'string' || !p.summary.trim()) errors.push("'payload.summary' is missing or blank");
      else if (p.summary.length > 1024) errors.push("'payload.summary' is too long");
      if (typeof p.source !== 'string' || !p.source.trim()) errors.push("'payload.source' is missing or blank");
      if (!SEVERITIES.includes(p.severity)) errors.push("'payload.severity' is missing or invalid");
      if (p.custom_details !== undefined && (typeof p.custom_details !== 'object' || p.custom_details === null)) errors.push("'payload.custom_details' must be an object");
    }
  } else if (e.event_action && typeof e.dedup_key !== 'string') errors.push("'dedup_key' is required for acknowledge and resolve");
  return errors;
}

export async function startPagerDutyFake() {
  const events: (PagerDutyEvent & { at: number })[] = [];
  let failing = 0;
  let failStatus = 500;
  let retryAfter: string | undefined;
  let rejected = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/v2/enqueue') return json(404, { status: 'not found', message: 'Not found' });
      if (failing > 0) {
        failing -= 1;
        return json(failStatus, { status: 'error', message: failStatus === 429 ? 'Rate limit reached' : 'Internal error' }, retryAfter ? { 'retry-after': retryAfter } : {});
      }
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        rejected += 1;
        return json(400, { status: 'invalid event', message: 'Event object is invalid', errors: ['Invalid JSON'] });
      }
      const errors = eventErrors(body);
      if (errors.length) {
        rejected += 1;
        return json(400, { status: 'invalid event', message: 'Event object is invalid', errors });
      }
      const dedupKey = body.dedup_key ?? randomUUID().replaceAll('-', '');
      events.push({ ...body, dedup_key: dedupKey, at: Date.now() });
      json(202, { status: 'success', message: 'Event processed', dedup_key: dedupKey });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v2/enqueue`,
    events,
    get rejected() { return rejected; },
    /** The next `count` calls fail with `status` (and Retry-After seconds, when given). */
    failNext(count: number, status: number, retryAfterSeconds?: number) {
      failing = count;
      failStatus = status;
      retryAfter = retryAfterSeconds === undefined ? undefined : String(retryAfterSeconds);
    },
    forKey: (dedupKey: string) => events.filter((e) => e.dedup_key === dedupKey),
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export type PagerDutyFake = Awaited<ReturnType<typeof startPagerDutyFake>>;
