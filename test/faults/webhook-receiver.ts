/**
 * A webhook receiver for the fault suite: a plain-HTTP server on loopback that checks each request's
 * Standard Webhooks signature with its own HMAC (not the sender's code), answers 204 and records every
 * arrival in order. Receivers deduplicate by webhook-id, so a re-sent delivery is counted, not applied.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Arrival {
  id: string;
  at: number;
  body: { type: string; event_id: string; timestamp: string; data: Record<string, unknown> };
}

export async function startWebhookReceiver() {
  const arrivals: Arrival[] = [];
  const refused: string[] = [];
  let secret: string | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const timestamp = String(req.headers['webhook-timestamp'] ?? '');
      const want = secret
        ? createHmac('sha256', Buffer.from(secret.replace(/^whsec_/, ''), 'base64')).update(`${id}.${timestamp}.${body}`).digest()
        : undefined;
      const signed = want !== undefined && String(req.headers['webhook-signature'] ?? '').split(' ').some((s) => {
        const [version, value] = s.split(',');
        const got = Buffer.from(value ?? '', 'base64');
        return version === 'v1' && got.length === want.length && timingSafeEqual(got, want);
      });
      if (!id || !signed) {
        refused.push(`${id} signed=${signed}`);
        res.writeHead(401).end();
        return;
      }
      arrivals.push({ id, at: Date.now(), body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks/faults`,
    arrivals,
    refused,
    /** the endpoint's secret, as the API returned it once at registration */
    setSecret(s: string) { secret = s; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export type WebhookReceiver = Awaited<ReturnType<typeof startWebhookReceiver>>;
