/**
 * A private three-node NATS cluster with JetStream on loopback, for tests that kill a node: each
 * nats-server runs as its own child process (so SIGKILL is real) with its own store directory, a
 * server_name and routes to the two others. No container engine is needed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort } from './free-port.ts';
import { until } from './pipeline-harness.ts';

const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface ClusterNode {
  /** server_name, as JetStream reports it in stream info `cluster.leader` / `replicas[].name` */
  name: string;
  url: string;
  clientPort: number;
  clusterPort: number;
  storeDir: string;
  configFile: string;
  /** the running nats-server, undefined once killed */
  child: ChildProcess | undefined;
  output(): string;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Starts `size` clustered nats-servers and waits until JetStream has a meta leader. */
export async function startNatsCluster(props: { size?: number; tag?: string } = {}) {
  const size = props.size ?? 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-nats-cluster-'));
  await chmod(dir, 0o755);
  const clusterName = `sw_${props.tag ?? 'c'}_${process.pid}_${Math.random().toString(36).slice(2, 7)}`;
  const ports: { client: number; cluster: number }[] = [];
  const taken = new Set<number>();
  while (ports.length < size) {
    const client = await freePort();
    const cluster = await freePort();
    if (client === cluster || taken.has(client) || taken.has(cluster)) continue;
    taken.add(client).add(cluster);
    ports.push({ client, cluster });
  }
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < size; i++) {
    const name = `n${i + 1}`;
    const storeDir = path.join(dir, name);
    await mkdir(storeDir, { recursive: true });
    const routes = ports.filter((_, j) => j !== i).map((p) => `"nats-route://127.0.0.1:${p.cluster}"`);
    const configFile = path.join(dir, `${name}.conf`);
    await writeFile(configFile, [
      `server_name: "${name}"`,
      `listen: "127.0.0.1:${ports[i]!.client}"`,
      `jetstream { max_memory_store: 64MB, max_file_store: 1GB }`, // store dir: -sd on the command line
      `cluster {`,
      `  name: "${clusterName}"`,
      `  listen: "127.0.0.1:${ports[i]!.cluster}"`,
      `  routes: [ ${routes.join(', ')} ]`,
      `}`,
      '',
    ].join('\n'));
    nodes.push({
      name, url: `nats://127.0.0.1:${ports[i]!.client}`, clientPort: ports[i]!.client, clusterPort: ports[i]!.cluster, storeDir, configFile,
      child: undefined, output: () => '',
    });
  }

  async function startNode(node: ClusterNode) {
    let out = '';
    const child = spawn(NATS_SERVER, ['-c', node.configFile, '-js', '-sd', node.storeDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
    child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
    node.child = child;
    node.output = () => out;
    await until(`nats-server ${node.name} to listen on ${node.clientPort}`, async () => {
      if (child.exitCode !== null) throw new Error(`nats-server ${node.name} exited with ${child.exitCode}:\n${out}`);
      return (await listening(node.clientPort)) ? true : undefined;
    }, 10_000, 20);
  }

  /** SIGKILLs one node by PID and waits until it is gone. */
  async function kill(name: string) {
    const node = nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no cluster node named ${name}`);
    const child = node.child;
    node.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  const all = () => nodes.map((n) => n.url).join(',');
  const alive = () => nodes.filter((n) => n.child).map((n) => n.url);

  try {
    await Promise.all(nodes.map(startNode));
    // JetStream answers API requests only once the nodes have elected a meta leader
    const nc = await connect({ servers: nodes.map((n) => n.url), maxReconnectAttempts: -1 });
    try {
      await until('a JetStream meta leader', async () => {
        const jsm = await jetstreamManager(nc, { timeout: 2000, checkAPI: false });
        return jsm.getAccountInfo().then(() => true, () => undefined);
      }, 30_000, 100);
    } finally {
      await nc.close();
    }
  } catch (err) {
    for (const n of nodes) n.child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    nodes,
    /** every client URL, comma-separated (the NATS_URL form the processes split) */
    urls: all,
    /** client URLs of the nodes still running */
    aliveUrls: alive,
    node: (name: string) => nodes.find((n) => n.name === name),
    kill,
    /** restarts a killed node on its store (it rejoins the cluster and catches up) */
    async restart(name: string) {
      const node = nodes.find((n) => n.name === name);
      if (!node) throw new Error(`no cluster node named ${name}`);
      if (!node.child) await startNode(node);
    },
    /** SIGKILLs every node still running and removes the store directories. */
    async destroy() {
      await Promise.all(nodes.map((n) => kill(n.name)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type NatsCluster = Awaited<ReturnType<typeof startNatsCluster>>;
