/**
 * NATS for the embedded default: NATS_URL when set; otherwise the server already listening on
 * 127.0.0.1:4222; otherwise a private `nats-server -js` with its store under DATA_DIR/nats (stopped with
 * the launcher). When no nats-server binary is installed, says how to get one and returns undefined.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

export interface NatsHandle {
  url: string;
  stop(): Promise<void>;
}

/** True when something accepts TCP connections at the URL's host and port. */
export function portOpen(url: URL, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function resolveNats(props: { dataDir: string; log: Logger; env?: NodeJS.ProcessEnv }): Promise<NatsHandle | undefined> {
  const env = props.env ?? process.env;
  if (env.NATS_URL) return { url: env.NATS_URL, stop: async () => {} };
  const local = new URL('nats://127.0.0.1:4222');
  if (await portOpen(local)) return { url: local.toString(), stop: async () => {} };
  const binary = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  if (binary.error) {
    props.log.warn('nats-server is not installed: install it (Debian: apt-get install nats-server) or set NATS_URL');
    return undefined;
  }
  const store = path.join(props.dataDir, 'nats');
  await mkdir(store, { recursive: true });
  const child: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', '4222', '-js', '-sd', store], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !(await portOpen(local)); i++) await new Promise((r) => setTimeout(r, 50));
  props.log.info({ store }, 'started a private nats-server with JetStream on 127.0.0.1:4222');
  return {
    url: local.toString(),
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
