/**
 * The change event every projector consumes: one row change of one committed transaction, as cdc/
 * publishes it to JetStream. This module is the only declaration of its shape.
 *
 * Subject: `<prefix>.<table>.<op>` (prefix "cdc"); header Nats-Msg-Id: `<commitLsn>:<index>`, so a
 * re-send after a reader restart is dropped by JetStream's de-duplication. `last` marks the final change
 * of its transaction. Snapshot events (op "snapshot") re-state a row's current value for a rebuild.
 */
export type Row = Record<string, unknown>;

export interface EventSource {
  /** WAL position of this change */
  lsn: string;
  /** WAL position of the transaction's commit record (same for every change of the transaction) */
  commitLsn: string;
  txId: number;
  /** ISO time of the commit */
  commitTime: string;
  /** 0-based position of the change within its transaction */
  index: number;
  /** true on the transaction's final change */
  last: boolean;
}

interface Base<Op extends string> {
  op: Op;
  table: string;
  source: EventSource;
}

export interface InsertEvent extends Base<'insert'> { before: null; after: Row }
export interface UpdateEvent extends Base<'update'> { before: Row | null; after: Row }
export interface DeleteEvent extends Base<'delete'> { before: Row; after: null }
export interface SnapshotEvent extends Base<'snapshot'> { before: null; after: Row }

export type ChangeEvent = InsertEvent | UpdateEvent | DeleteEvent | SnapshotEvent;
export type ChangeOp = ChangeEvent['op'];

/**
 * Position marker the reader publishes when it has published everything up to `lsn` (idle periods,
 * transactions with no published rows), so projectors' applied position keeps up with the WAL.
 */
export interface PositionMarker {
  op: 'position';
  lsn: string;
  at: string;
}

export type StreamMessage = ChangeEvent | PositionMarker;

/** Subject a change is published on. */
export function subjectFor(prefix: string, table: string, op: ChangeOp): string {
  return `${prefix}.${table}.${op}`;
}

/** Subject of position markers. */
export function positionSubject(prefix: string): string {
  return `${prefix}._position`;
}

/** De-duplication id of a change: its transaction's commit LSN and its index in the transaction. */
export function messageIdFor(source: Pick<EventSource, 'commitLsn' | 'index'>): string {
  return `${source.commitLsn}:${source.index}`;
}

/** A decoded row made JSON-ready: Dates become ISO strings, everything else stays as the type parser made it. */
export function jsonRow(row: Record<string, unknown>): Row {
  const out: Row = {};
  // for…in rather than Object.entries: the same keys for rows (the decoder's are prototype-less, the
  // driver's plain), without an array per column; this runs for every row image the reader publishes
  for (const k in row) {
    const v = row[k];
    out[k] = v instanceof Date ? v.toISOString() : v;
  }
  return out;
}

/** The row a change describes (after image, or before image for deletes). */
export function rowOf(event: ChangeEvent): Row {
  return event.after ?? event.before!;
}
