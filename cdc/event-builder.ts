/**
 * Turns the pgoutput message sequence (begin, relation, insert/update/delete…, commit) into change
 * envelopes. Each change is held back until the next one (or the commit) arrives, so the transaction's
 * final change can be marked `last` without buffering the whole transaction. Pure: emits through
 * callbacks, does no I/O.
 */
import type { Pgoutput } from 'pg-logical-replication';
import { jsonRow, type ChangeEvent, type Row } from './envelope.ts';
import { formatLsn, parseLsn } from './lsn.ts';

export interface TransactionInfo {
  txId: number;
  commitLsn: string;
  /** end of the commit record: the position to confirm once the transaction is durable downstream */
  commitEndLsn: bigint;
  commitTime: string;
}

export interface EventBuilderSink {
  begin(tx: TransactionInfo): void;
  change(event: ChangeEvent): void;
  commit(tx: TransactionInfo, changes: number): void;
}

interface OpenTransaction {
  info: TransactionInfo;
  index: number;
  held: ChangeEvent | undefined;
}

function isoFromMicros(micros: bigint | BigInt): string {
  return new Date(Number((micros as bigint) / 1000n)).toISOString();
}

function plainRow(row: Record<string, unknown> | null): Row | null {
  return row ? jsonRow(row) : null;
}

export class EventBuilder {
  private tx: OpenTransaction | undefined;

  constructor(private readonly sink: EventBuilderSink, private readonly tables?: ReadonlySet<string>) {}

  /** Feeds one decoded pgoutput message at WAL position `lsn`. */
  push(lsn: bigint, message: Pgoutput.Message): void {
    switch (message.tag) {
      case 'begin': {
        if (!message.commitLsn) throw new Error('begin without commit LSN');
        if (this.tx) throw new Error(`begin of transaction ${message.xid} while ${this.tx.info.txId} is still open`);
        const info: TransactionInfo = {
          txId: message.xid,
          commitLsn: formatLsn(parseLsn(message.commitLsn)), // the parser zero-pads; use Postgres' own spelling
          commitEndLsn: parseLsn(message.commitLsn), // replaced by the commit record's end when it arrives
          commitTime: isoFromMicros(message.commitTime),
        };
        this.tx = { info, index: 0, held: undefined };
        this.sink.begin(info);
        return;
      }
      case 'insert':
      case 'update':
      case 'delete': {
        const tx = this.tx;
        if (!tx) throw new Error(`${message.tag} outside a transaction`);
        const table = message.relation.name;
        if (this.tables && !this.tables.has(table)) return;
        const source = { lsn: formatLsn(lsn), commitLsn: tx.info.commitLsn, txId: tx.info.txId, commitTime: tx.info.commitTime, index: tx.index, last: false };
        tx.index += 1;
        let event: ChangeEvent;
        if (message.tag === 'insert') event = { op: 'insert', table, before: null, after: plainRow(message.new)!, source };
        else if (message.tag === 'update') event = { op: 'update', table, before: plainRow(message.old ?? message.key), after: plainRow(message.new)!, source };
        else {
          const before = plainRow(message.old ?? message.key);
          if (!before) throw new Error(`delete on ${table} without a replica identity: set a primary key or REPLICA IDENTITY FULL`);
          event = { op: 'delete', table, before, after: null, source };
        }
        if (tx.held) this.sink.change(tx.held);
        tx.held = event;
        return;
      }
      case 'commit': {
        const tx = this.tx;
        if (!tx) throw new Error('commit outside a transaction');
        if (message.commitEndLsn) tx.info.commitEndLsn = parseLsn(message.commitEndLsn);
        if (tx.held) {
          tx.held.source.last = true;
          this.sink.change(tx.held);
        }
        this.sink.commit(tx.info, tx.index);
        this.tx = undefined;
        return;
      }
      default:
        return; // relation, type, origin, truncate, message: nothing to publish
    }
  }
}
