/**
 * Decodes pgoutput (protocol version 1) messages into the shapes of pg-logical-replication's
 * `Pgoutput.Message`, which the event builder consumes. It replaces that library's parser on the
 * reader's hot path: text values are read straight out of the chunk (no sub-buffer and no TextDecoder
 * call per value), rows are plain objects (the library's prototype-less ones are slow to copy and to
 * serialise), and timestamptz columns decode to their ISO string without a Date (timestamptz.ts).
 * Otherwise the output is the library's, value for value: column values through the pg driver's type
 * parsers, LSNs as zero-padded "XXXXXXXX/XXXXXXXX" text (null for 0/0), times as microseconds since
 * the Unix epoch (bigint). Relations are cached by OID as the server announces them.
 * Format: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 */
import pg from 'pg';
import type { Pgoutput } from 'pg-logical-replication';
import { fastUtcParser, TIMESTAMPTZ_OID } from './timestamptz.ts';

const PG_EPOCH_MICROS = 946_684_800_000_000n; // 2000-01-01 in microseconds since the Unix epoch
const REPLICA_IDENTITY: Record<number, Pgoutput.MessageRelation['replicaIdentity']> = { 0x64: 'default', 0x6e: 'nothing', 0x66: 'full', 0x69: 'index' };

type Row = Record<string, unknown>;

export class PgoutputDecoder {
  private readonly relations = new Map<number, Pgoutput.MessageRelation>();
  private readonly types = new Map<number, { typeSchema: string; typeName: string }>();
  private b: Buffer = Buffer.alloc(0);
  private p = 0;

  /** Decodes the pgoutput message that fills `buf` from `offset` (the payload of an XLogData message). */
  decode(buf: Buffer, offset = 0): Pgoutput.Message {
    this.b = buf;
    this.p = offset;
    const tag = this.u8();
    switch (tag) {
      case 0x42: // B
        return { tag: 'begin', commitLsn: this.lsn(), commitTime: this.time(), xid: this.i32() };
      case 0x43: // C
        return { tag: 'commit', flags: this.u8(), commitLsn: this.lsn(), commitEndLsn: this.lsn(), commitTime: this.time() };
      case 0x49: { // I
        const relation = this.relation();
        this.u8(); // 'N'
        return { tag: 'insert', relation, new: this.tuple(relation) };
      }
      case 0x55: { // U
        const relation = this.relation();
        let key: Row | null = null;
        let old: Row | null = null;
        const kind = this.u8();
        if (kind === 0x4b /* K */) {
          key = this.keyTuple(relation);
          this.u8(); // 'N'
        } else if (kind === 0x4f /* O */) {
          old = this.tuple(relation);
          this.u8(); // 'N'
        } else if (kind !== 0x4e /* N */) {
          throw new Error(`pgoutput: unknown update submessage ${String.fromCharCode(kind)}`);
        }
        return { tag: 'update', relation, key, old, new: this.tuple(relation, old) };
      }
      case 0x44: { // D
        const relation = this.relation();
        const kind = this.u8();
        if (kind === 0x4b) return { tag: 'delete', relation, key: this.keyTuple(relation), old: null };
        if (kind === 0x4f) return { tag: 'delete', relation, key: null, old: this.tuple(relation) };
        throw new Error(`pgoutput: unknown delete submessage ${String.fromCharCode(kind)}`);
      }
      case 0x52: // R
        return this.relationMessage();
      case 0x59: { // Y
        const typeOid = this.i32();
        const typeSchema = this.cstring();
        const typeName = this.cstring();
        this.types.set(typeOid, { typeSchema, typeName });
        return { tag: 'type', typeOid, typeSchema, typeName };
      }
      case 0x4f: // O
        return { tag: 'origin', originLsn: this.lsn(), originName: this.cstring() };
      case 0x54: { // T
        const count = this.i32();
        const flags = this.u8();
        const relations: Pgoutput.MessageRelation[] = [];
        for (let i = 0; i < count; i++) relations.push(this.relations.get(this.i32())!);
        return { tag: 'truncate', cascade: Boolean(flags & 0b1), restartIdentity: Boolean(flags & 0b10), relations };
      }
      case 0x4d: { // M
        const flags = this.u8();
        const messageLsn = this.lsn();
        const prefix = this.cstring();
        const length = this.i32();
        return { tag: 'message', flags, transactional: Boolean(flags & 0b1), messageLsn, prefix, content: this.bytes(length) };
      }
      default:
        throw new Error(`pgoutput: unknown message ${String.fromCharCode(tag)}`);
    }
  }

  private relationMessage(): Pgoutput.MessageRelation {
    const relationOid = this.i32();
    const schema = this.cstring();
    const name = this.cstring();
    const identity = this.u8();
    const replicaIdentity = REPLICA_IDENTITY[identity];
    if (!replicaIdentity) throw new Error(`pgoutput: unknown replica identity ${String.fromCharCode(identity)}`);
    const count = this.i16();
    const columns: Pgoutput.RelationColumn[] = [];
    for (let i = 0; i < count; i++) {
      const flags = this.u8();
      const colName = this.cstring();
      const typeOid = this.i32();
      const typeMod = this.i32();
      const parse = pg.types.getTypeParser(typeOid) as (text: string) => unknown;
      columns.push({
        flags, name: colName, typeOid, typeMod, typeSchema: null, typeName: null, ...this.types.get(typeOid),
        parser: typeOid === TIMESTAMPTZ_OID ? fastUtcParser(parse) : parse,
      });
    }
    const msg: Pgoutput.MessageRelation = { tag: 'relation', relationOid, schema, name, replicaIdentity, columns, keyColumns: columns.filter((c) => c.flags & 0b1).map((c) => c.name) };
    this.relations.set(relationOid, msg);
    return msg;
  }

  private relation(): Pgoutput.MessageRelation {
    const oid = this.i32();
    const relation = this.relations.get(oid);
    if (!relation) throw new Error(`pgoutput: change for relation ${oid} before its relation message`);
    return relation;
  }

  /** TupleData: one value per column; an unchanged TOASTed value is taken from `unchanged` (the old image), if any. */
  private tuple(relation: Pgoutput.MessageRelation, unchanged?: Row | null): Row {
    const count = this.i16();
    const columns = relation.columns;
    const row: Row = {};
    for (let i = 0; i < count; i++) {
      const column = columns[i]!;
      const kind = this.u8();
      if (kind === 0x74 /* t */) {
        const length = this.i32();
        this.need(length);
        row[column.name] = column.parser(this.b.toString('utf8', this.p, (this.p += length)));
      } else if (kind === 0x6e /* n */) {
        row[column.name] = null;
      } else if (kind === 0x75 /* u */) {
        row[column.name] = unchanged?.[column.name];
      } else if (kind === 0x62 /* b */) {
        row[column.name] = this.bytes(this.i32());
      } else {
        throw new Error(`pgoutput: unknown tuple value kind ${String.fromCharCode(kind)}`);
      }
    }
    return row;
  }

  /** A key-only tuple: the key columns' values (non-key columns are sent as nulls and dropped). */
  private keyTuple(relation: Pgoutput.MessageRelation): Row {
    const tuple = this.tuple(relation);
    const key: Row = {};
    for (const k of relation.keyColumns) key[k] = tuple[k] === null ? undefined : tuple[k];
    return key;
  }

  private need(n: number) {
    if (this.p + n > this.b.length) throw new Error('pgoutput: unexpected end of message');
  }
  private u8(): number {
    this.need(1);
    return this.b[this.p++]!;
  }
  private i16(): number {
    this.need(2);
    const v = this.b.readInt16BE(this.p);
    this.p += 2;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.b.readInt32BE(this.p);
    this.p += 4;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }
  private lsn(): string | null {
    const h = this.u32();
    const l = this.u32();
    if (h === 0 && l === 0) return null;
    return `${h.toString(16).padStart(8, '0')}/${l.toString(16).padStart(8, '0')}`.toUpperCase();
  }
  private time(): bigint {
    const h = this.u32();
    const l = this.u32();
    return ((BigInt(h) << 32n) | BigInt(l)) + PG_EPOCH_MICROS;
  }
  private cstring(): string {
    const end = this.b.indexOf(0, this.p);
    if (end < 0) throw new Error('pgoutput: unexpected end of message');
    const s = this.b.toString('utf8', this.p, end);
    this.p = end + 1;
    return s;
  }
  private bytes(n: number): Buffer {
    this.need(n);
    // a copy: the chunk is a view into the driver's read buffer, which is reused as more data arrives
    return Buffer.from(this.b.subarray(this.p, (this.p += n)));
  }
}
