/**
 * One webhook POST over node:http(s) with keep-alive agents, so an endpoint's queue drains over one
 * reused connection. node:http rather than fetch for its cost: the worker sends an endpoint's deliveries
 * one at a time, so the CPU spent per request bounds how many deliveries a second one endpoint gets
 * (measured here: ≈0.17 ms per request against ≈0.64 ms for fetch, whose web streams and abort signals
 * dominated the worker's profile).
 *
 * Semantics are the fetch ones the worker had: redirects are not followed (a redirect is not a
 * delivery); the answer's body is read up to a bound and discarded, and a body cut short leaves the
 * status standing; the whole exchange has one deadline. A request that fails on a reused keep-alive
 * connection before any answer (ECONNRESET/EPIPE: the receiver closed the idle connection as we wrote)
 * is sent once more on a fresh connection — before anything later, so per-endpoint order holds, and a
 * receiver that did get the first copy dedupes it by webhook-id, as it must for any retry.
 */
import http from 'node:http';
import https from 'node:https';

export interface WebhookRequest {
  url: string;
  /** the exact bytes that were signed */
  body: string;
  headers: Record<string, string>;
  /** deadline for the whole exchange */
  timeoutMs: number;
}

export interface WebhookAnswer {
  status: number;
  retryAfter: string | null;
}

/** Sends one request; rejects on a network failure or timeout (never on an HTTP status). */
export interface WebhookSender {
  post(request: WebhookRequest): Promise<WebhookAnswer>;
  /** Closes the idle keep-alive connections. */
  close(): void;
}

/** No answer within the deadline. */
export class WebhookTimeout extends Error {
  readonly code = 'webhook_timeout';
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'WebhookTimeout';
  }
}

const MAX_DRAINED_BODY = 64 * 1024;
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE']);

/** A sender with its own keep-alive agents (one per protocol). */
export function createHttpSender(options: { maxBodyBytes?: number } = {}): WebhookSender {
  const maxBody = options.maxBodyBytes ?? MAX_DRAINED_BODY;
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

  function exchange(url: URL, request: WebhookRequest, deadline: number, fresh: boolean): Promise<WebhookAnswer> {
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      let settled = false;
      let answered = false;
      const settle = (done: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        done();
      };
      const req = (secure ? https : http).request(url, {
        method: 'POST',
        // a fresh connection for the one resend after a stale one (agent: false = not pooled)
        agent: fresh ? false : secure ? agents.https : agents.http,
        headers: { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) },
      }, (res) => {
        answered = true;
        const header = res.headers['retry-after'];
        const answer = { status: res.statusCode ?? 0, retryAfter: (Array.isArray(header) ? header[0] : header) ?? null };
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read <= maxBody) return;
          settle(() => resolve(answer));
          res.destroy(); // too much to read: the connection is dropped instead of reused
        });
        res.on('end', () => settle(() => resolve(answer)));
        // a body cut short (timeout, reset) changes nothing: the status is what counts
        res.on('error', () => settle(() => resolve(answer)));
        res.on('close', () => settle(() => resolve(answer)));
      });
      const timer = setTimeout(() => req.destroy(new WebhookTimeout(request.timeoutMs)), Math.max(0, deadline - Date.now()));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!answered && !fresh && req.reusedSocket && STALE_CONNECTION.has(err.code ?? '') && Date.now() < deadline) {
          settle(() => resolve(exchange(url, request, deadline, true)));
          return;
        }
        settle(() => reject(err));
      });
      req.end(request.body);
    });
  }

  return {
    post(request) {
      let url: URL;
      try {
        url = new URL(request.url);
      } catch (err) {
        return Promise.reject(err);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new Error(`unsupported protocol ${url.protocol}`));
      return exchange(url, request, Date.now() + request.timeoutMs, false);
    },
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
