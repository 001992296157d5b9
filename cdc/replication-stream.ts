/**
 * A logical replication connection (pgoutput) that hands every server message — row data and keepalives
 * alike — to one async handler, strictly in arrival order, pausing the socket while the handler is behind
 * (backpressure). It never confirms WAL by itself: the owner calls sendStatus() with the position it
 * has made durable elsewhere. pgoutput payloads are decoded by pgoutput-decoder.ts.
 */
import pg from 'pg';
import type { Pgoutput } from 'pg-logical-replication';
import { PgoutputDecoder } from './pgoutput-decoder.ts';

export type ServerMessage =
  | { kind: 'data'; walStart: bigint; message: Pgoutput.Message }
  | { kind: 'keepalive'; walEnd: bigint; replyRequested: boolean };

/** The slot is gone or unusable: the process must stop and an operator must act. */
export class SlotLost extends Error {
  readonly code = 'slot_lost';
}

const PG_EPOCH_MS = 946_684_800_000n; // 2000-01-01T00:00:00Z
const HIGH_WATER = 2000;
const LOW_WATER = 200;

interface CopyConnection {
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

export interface ReplicationStreamProps {
  connectionString: string;
  slot: string;
  publication: string;
  /** handles one message; returns a promise only when the next message must wait for it */
  onMessage: (message: ServerMessage) => Promise<void> | undefined;
}

export class ReplicationStream {
  private readonly client: pg.Client;
  private readonly decoder = new PgoutputDecoder();
  private readonly queue: ServerMessage[] = [];
  private draining = false;
  private paused = false;
  private failure: ((err: Error) => void) | undefined;
  private connection: CopyConnection | undefined;

  constructor(private readonly props: ReplicationStreamProps) {
    // TimeZone=UTC: timestamptz values then arrive as "…+00" text, which decodes without a Date (timestamptz.ts);
    // the instant is the same in any zone (options in the URL, if any, win, and values take the slower path)
    this.client = new pg.Client({ connectionString: props.connectionString, replication: 'database', options: '-c TimeZone=UTC' } as pg.ClientConfig);
  }

  /** Streams from the slot's confirmed position until stop() or an error; resolves when the stream ends. */
  async run(): Promise<void> {
    await this.client.connect();
    const connection = (this.client as unknown as { connection: CopyConnection }).connection;
    this.connection = connection;
    connection.on('copyData', ({ chunk }) => {
      // parse now: the chunk is a view into the driver's read buffer, which is reused as more data arrives
      let parsed: ServerMessage | undefined;
      try {
        parsed = this.parse(chunk);
      } catch (err) {
        this.failure?.(err as Error);
        return;
      }
      if (parsed) this.queue.push(parsed);
      if (this.queue.length > HIGH_WATER && !this.paused) {
        this.paused = true;
        connection.stream.pause();
      }
      void this.drain();
    });
    const failed = new Promise<never>((_, reject) => (this.failure = reject));
    this.client.on('error', (err) => this.failure?.(err));
    const options = `proto_version '1', publication_names '${this.props.publication.replaceAll("'", "''")}'`;
    const started = this.client.query(`START_REPLICATION SLOT ${pg.escapeIdentifier(this.props.slot)} LOGICAL 0/0 (${options})`);
    try {
      await Promise.race([started, failed]);
    } catch (err) {
      const message = (err as Error).message ?? '';
      if (/replication slot .* does not exist|can no longer get changes|publication .* does not exist/i.test(message)) {
        throw new SlotLost(`${message} — drop and recreate the slot, then npm run resync`, { cause: err });
      }
      throw err;
    }
  }

  private async drain() {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length) {
        // the handler returns a promise only when it must wait (backpressure); handling a socket chunk's
        // messages in one synchronous run lets the publisher write their events to NATS together
        const wait = this.props.onMessage(this.queue.shift()!);
        if (wait) await wait;
        if (this.paused && this.queue.length < LOW_WATER) {
          this.paused = false;
          this.connection?.stream.resume();
        }
      }
    } catch (err) {
      this.failure?.(err as Error);
    } finally {
      this.draining = false;
    }
  }

  private parse(chunk: Buffer): ServerMessage | undefined {
    if (chunk[0] === 0x77) {
      // XLogData: 'w', walStart, walEnd, sendTime, payload
      return { kind: 'data', walStart: chunk.readBigUInt64BE(1), message: this.decoder.decode(chunk, 25) };
    }
    if (chunk[0] === 0x6b) {
      // Primary keepalive: 'k', walEnd, sendTime, replyRequested
      return { kind: 'keepalive', walEnd: chunk.readBigUInt64BE(1), replyRequested: chunk[17] === 1 };
    }
    return undefined;
  }

  /** Ends run() with `err`: the owner cannot go on (its publisher failed), even while no WAL arrives. */
  abort(err: Error): void {
    this.failure?.(err);
  }

  /** Standby status update: everything before `lsn` is durable downstream; `ping` asks for a keepalive. */
  sendStatus(lsn: bigint, ping = false): void {
    if (!this.connection) return;
    const message = Buffer.alloc(34);
    message[0] = 0x72; // 'r'
    message.writeBigUInt64BE(lsn, 1); // written
    message.writeBigUInt64BE(lsn, 9); // flushed
    message.writeBigUInt64BE(lsn, 17); // applied
    message.writeBigUInt64BE((BigInt(Date.now()) - PG_EPOCH_MS) * 1000n, 25);
    message[33] = ping ? 1 : 0;
    this.connection.sendCopyFromChunk(message);
  }

  /** Ends the replication connection. */
  async stop(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}
