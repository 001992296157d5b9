/**
 * An in-process fake of a Slack incoming webhook, for driving the real `@slack/webhook` client in tests:
 * POST of a JSON message → 200 `ok` (text/plain), like Slack. A body that is not JSON → 400
 * `invalid_payload`; a message with neither text nor blocks → 400 `no_text`; on demand the next calls
 * get 429 `rate_limited` with Retry-After (seconds). Accepted messages are recorded with their arrival time.
 * Fault stretches, until resetFaults(): `failAll(status)` answers every call with that status (not
 * recorded); `hold(ms)` holds every call that arrives for `ms` and then drops its connection without an
 * answer (not recorded either: the message never reached Slack), so a client with a shorter timeout
 * times out.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackMessage {
  at: number;
  body: { text?: string; blocks?: unknown[]; metadata?: { event_type: string; event_payload: Record<string, unknown> } };
}

export async function startSlackFake() {
  const messages: SlackMessage[] = [];
  let rateLimited = 0;
  let retryAfterSeconds = 1;
  let requests = 0;
  let failStatus: { status: number; retryAfter?: number } | undefined;
  let holdMs = 0;
  let held = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests += 1;
      const answer = (status: number, text: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'text/plain', ...headers });
        res.end(text);
      };
      if (req.method !== 'POST') return answer(405, 'invalid_method');
      if (holdMs > 0) {
        held += 1;
        const timer = setTimeout(() => req.socket.destroy(), holdMs);
        req.socket.once('close', () => clearTimeout(timer));
        return;
      }
      if (failStatus) {
        const headers: Record<string, string> = failStatus.retryAfter === undefined ? {} : { 'retry-after': String(failStatus.retryAfter) };
        return answer(failStatus.status, failStatus.status >= 500 ? 'internal_error' : 'injected_failure', headers);
      }
      if (rateLimited > 0) {
        rateLimited -= 1;
        return answer(429, 'rate_limited', { 'retry-after': String(retryAfterSeconds) });
      }
      let body: SlackMessage['body'];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return answer(400, 'invalid_payload');
      }
      if (!body || (typeof body.text !== 'string' && !Array.isArray(body.blocks))) return answer(400, 'no_text');
      messages.push({ at: Date.now(), body });
      answer(200, 'ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/services/T000/B000/XXXX`,
    messages,
    get requests() { return requests; },
    /** The next `count` calls are refused with 429 and Retry-After: `seconds`. */
    rateLimitNext(count: number, seconds = 1) {
      rateLimited = count;
      retryAfterSeconds = seconds;
    },
    /** calls held (and dropped unanswered) by hold() */
    get held() { return held; },
    /** Every call answers `status` (Retry-After when given) until resetFaults(). */
    failAll(status: number, retryAfterSeconds?: number) {
      failStatus = { status, retryAfter: retryAfterSeconds };
    },
    /** Every call arriving from now on is held `ms`, then its connection dropped unanswered, until resetFaults(). */
    hold(ms: number) {
      holdMs = ms;
    },
    /** Ends failAll, hold and rateLimitNext (calls already held stay held until their time is up). */
    resetFaults() {
      failStatus = undefined;
      holdMs = 0;
      rateLimited = 0;
    },
    /** messages whose text mentions `needle` */
    about: (needle: string) => messages.filter((m) => m.body.text?.includes(needle)),
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export type SlackFake = Awaited<ReturnType<typeof startSlackFake>>;
