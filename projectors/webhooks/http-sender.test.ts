import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpSender, WebhookTimeout, type WebhookSender } from './http-sender.ts';

const servers: http.Server[] = [];
const senders: WebhookSender[] = [];

async function serve(handler: http.RequestListener) {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` };
}

function sender() {
  const s = createHttpSender({ maxBodyBytes: 1024 });
  senders.push(s);
  return s;
}

const post = (s: WebhookSender, url: string, timeoutMs = 2000) => s.post({ url, body: '{"a":1}', headers: { 'content-type': 'application/json', 'webhook-id': '1' }, timeoutMs });

afterEach(async () => {
  for (const s of senders.splice(0)) s.close();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); })));
});

describe('http sender', () => {
  it('posts the exact body with its headers and reuses one keep-alive connection', async () => {
    const seen: { body: string; headers: http.IncomingHttpHeaders; port: number }[] = [];
    const { url } = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers, port: req.socket.remotePort! });
        res.writeHead(204).end();
      });
    });
    const s = sender();
    expect(await post(s, url)).toEqual({ status: 204, retryAfter: null });
    expect(await post(s, url)).toEqual({ status: 204, retryAfter: null });
    expect(seen.map((x) => x.body)).toEqual(['{"a":1}', '{"a":1}']);
    expect(seen[0]!.headers).toMatchObject({ 'content-type': 'application/json', 'webhook-id': '1', 'content-length': '7' });
    expect(seen[1]!.port).toBe(seen[0]!.port);
  });

  it('answers the status and Retry-After of a refusal, and does not follow a redirect', async () => {
    const { url } = await serve((req, res) => {
      req.resume();
      if (req.url === '/hook') res.writeHead(429, { 'retry-after': '7' }).end('slow down');
      else res.writeHead(200).end();
    });
    const s = sender();
    expect(await post(s, url)).toEqual({ status: 429, retryAfter: '7' });
    const { url: moved } = await serve((req, res) => {
      req.resume();
      res.writeHead(307, { location: url.replace('/hook', '/elsewhere') }).end();
    });
    expect((await post(s, moved)).status).toBe(307);
  });

  it('keeps the status when the answer body is larger than it reads', async () => {
    const { url } = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('x'.repeat(64 * 1024));
    });
    expect(await post(sender(), url)).toEqual({ status: 200, retryAfter: null });
  });

  it('fails with WebhookTimeout when no answer comes within the deadline', async () => {
    const { url } = await serve((req) => req.resume()); // never answers
    const started = Date.now();
    await expect(post(sender(), url, 200)).rejects.toBeInstanceOf(WebhookTimeout);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('fails with the network error code when nothing listens', async () => {
    const { server, url } = await serve(() => {});
    await new Promise<void>((r) => server.close(() => r()));
    await expect(post(sender(), url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('sends once more on a fresh connection when a reused one turns out closed before any answer', async () => {
    let requests = 0;
    const sockets: Socket[] = [];
    const { server, url } = await serve((req, res) => {
      requests += 1;
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    server.on('connection', (socket) => sockets.push(socket));
    const s = sender();
    expect((await post(s, url)).status).toBe(204);
    // the receiver drops the idle keep-alive connection without the client having seen it yet: the
    // next write lands on a dead socket (reset), as when the receiver's idle timeout races a send
    for (const socket of sockets) socket.resetAndDestroy();
    expect((await post(s, url)).status).toBe(204);
    expect(requests).toBe(2);
    expect(sockets).toHaveLength(2); // the resend went over a new connection
  });
});
