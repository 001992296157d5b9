/**
 * The small HTTP server every non-API process exposes: /healthz (alive), /readyz (doing its job) and
 * /metrics (Prometheus text format).
 */
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface ProbeServer {
  port(): number;
  close(): Promise<void>;
}

export async function startProbeServer(props: { port: number; host?: string; registry: Registry; ready: () => boolean | Promise<boolean> }): Promise<ProbeServer> {
  const server = http.createServer(async (req, res) => {
    try {
      if (req.url === '/healthz') return send(res, 200, 'application/json', '{"status":"ok"}');
      if (req.url === '/readyz') {
        const ready = await props.ready();
        return send(res, ready ? 200 : 503, 'application/json', JSON.stringify({ status: ready ? 'ready' : 'not ready' }));
      }
      if (req.url === '/metrics') return send(res, 200, props.registry.contentType, await props.registry.metrics());
      send(res, 404, 'application/json', '{"error":{"code":"not_found","message":"no such probe"}}');
    } catch {
      send(res, 500, 'application/json', '{"error":{"code":"internal","message":"probe failed"}}');
    }
  });
  await new Promise<void>((resolve) => server.listen(props.port, props.host ?? '127.0.0.1', resolve));
  return {
    port: () => (server.address() as { port: number }).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function send(res: http.ServerResponse, status: number, type: string, body: string) {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}
