/**
 * A loopback TCP proxy for cutting one link of the pipeline (cdc ↔ NATS) without touching either end:
 * every accepted connection is piped to the upstream address. `cut(ms)` destroys every live connection
 * and, for `ms`, destroys each new one right after accepting it (the client sees its connection closed
 * before the server's INFO, as with a broken network path), so the client's reconnect loop is what is
 * tested. An upstream that refuses (NATS restarting) closes the client side as well.
 */
import net from 'node:net';

export interface TcpProxy {
  /** host:port clients connect to */
  readonly port: number;
  /** connections accepted and piped so far */
  readonly connections: number;
  /** Destroys every live connection and refuses new ones for `ms`; resolves when the link is open again. */
  cut(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port forwarding to 127.0.0.1:`upstreamPort`. */
export async function startTcpProxy(props: { upstreamPort: number }): Promise<TcpProxy> {
  const live = new Set<net.Socket>();
  let refuseUntil = 0;
  let connections = 0;
  const server = net.createServer((client) => {
    if (Date.now() < refuseUntil) {
      client.destroy();
      return;
    }
    connections += 1;
    const upstream = net.connect(props.upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      live.add(s);
      s.setNoDelay(true);
      s.on('error', () => {}); // a cut or a restarting server: both ends are closed below
      s.once('close', () => {
        live.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    get connections() { return connections; },
    async cut(ms) {
      refuseUntil = Date.now() + ms;
      for (const s of [...live]) s.destroy();
      await new Promise((r) => setTimeout(r, ms));
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of [...live]) s.destroy();
      server.close(() => resolve());
    }),
  };
}
