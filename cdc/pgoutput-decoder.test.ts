import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import '../db/type-parsers.ts';
import { PgoutputDecoder } from './pgoutput-decoder.ts';

// ---- pgoutput v1 message encoder (the server's side), for feeding both decoders the same bytes ----

type Value = string | null | 'unchanged' | { binary: Buffer };
const enc = {
  u8: (n: number) => Buffer.from([n]),
  i16: (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; },
  i32: (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; },
  u64: (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; },
  str: (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]),
  tag: (c: string) => Buffer.from(c, 'latin1'),
};
const UNCHANGED = 'unchanged' as const;
function tuple(values: Value[]): Buffer {
  return Buffer.concat([enc.i16(values.length), ...values.map((v) => {
    if (v === null) return enc.tag('n');
    if (v === UNCHANGED) return enc.tag('u');
    if (typeof v === 'object') return Buffer.concat([enc.tag('b'), enc.i32(v.binary.length), v.binary]);
    const bytes = Buffer.from(v, 'utf8');
    return Buffer.concat([enc.tag('t'), enc.i32(bytes.length), bytes]);
  })]);
}
const PG_EPOCH = 946_684_800_000_000n;
const msg = {
  begin: (lsn: bigint, micros: bigint, xid: number) => Buffer.concat([enc.tag('B'), enc.u64(lsn), enc.u64(micros - PG_EPOCH), enc.i32(xid)]),
  commit: (lsn: bigint, end: bigint, micros: bigint) => Buffer.concat([enc.tag('C'), enc.u8(0), enc.u64(lsn), enc.u64(end), enc.u64(micros - PG_EPOCH)]),
  relation: (oid: number, schema: string, name: string, identity: string, cols: { name: string; type: number; key?: boolean; mod?: number }[]) =>
    Buffer.concat([enc.tag('R'), enc.i32(oid), enc.str(schema), enc.str(name), enc.tag(identity), enc.i16(cols.length),
      ...cols.map((c) => Buffer.concat([enc.u8(c.key ? 1 : 0), enc.str(c.name), enc.i32(c.type), enc.i32(c.mod ?? -1)]))]),
  type: (oid: number, schema: string, name: string) => Buffer.concat([enc.tag('Y'), enc.i32(oid), enc.str(schema), enc.str(name)]),
  insert: (oid: number, row: Value[]) => Buffer.concat([enc.tag('I'), enc.i32(oid), enc.tag('N'), tuple(row)]),
  updateKey: (oid: number, key: Value[], row: Value[]) => Buffer.concat([enc.tag('U'), enc.i32(oid), enc.tag('K'), tuple(key), enc.tag('N'), tuple(row)]),
  updateOld: (oid: number, old: Value[], row: Value[]) => Buffer.concat([enc.tag('U'), enc.i32(oid), enc.tag('O'), tuple(old), enc.tag('N'), tuple(row)]),
  updateNew: (oid: number, row: Value[]) => Buffer.concat([enc.tag('U'), enc.i32(oid), enc.tag('N'), tuple(row)]),
  deleteKey: (oid: number, key: Value[]) => Buffer.concat([enc.tag('D'), enc.i32(oid), enc.tag('K'), tuple(key)]),
  deleteOld: (oid: number, old: Value[]) => Buffer.concat([enc.tag('D'), enc.i32(oid), enc.tag('O'), tuple(old)]),
  truncate: (oids: number[], flags: number) => Buffer.concat([enc.tag('T'), enc.i32(oids.length), enc.u8(flags), ...oids.map(enc.i32)]),
  origin: (lsn: bigint, name: string) => Buffer.concat([enc.tag('O'), enc.u64(lsn), enc.str(name)]),
  message: (flags: number, lsn: bigint, prefix: string, content: Buffer) => Buffer.concat([enc.tag('M'), enc.u8(flags), enc.u64(lsn), enc.str(prefix), enc.i32(content.length), content]),
};

// the columns of stock_movements and stock_levels, with their real type OIDs
const MOVEMENTS = [
  { name: 'id', type: 20, key: true }, { name: 'sku', type: 25 }, { name: 'location', type: 25 }, { name: 'lot_id', type: 20 },
  { name: 'delta_on_hand', type: 23 }, { name: 'delta_reserved', type: 23 }, { name: 'reason', type: 25 }, { name: 'order_id', type: 2950 },
  { name: 'ref', type: 25 }, { name: 'actor', type: 25 }, { name: 'note', type: 25 }, { name: 'created_at', type: 1184 },
];
const LEVELS = [
  { name: 'sku', type: 25, key: true }, { name: 'location', type: 25, key: true }, { name: 'on_hand', type: 23 }, { name: 'reserved', type: 23 },
  { name: 'version', type: 20 }, { name: 'updated_at', type: 1184 }, { name: 'expires_on', type: 1082 }, { name: 'meta', type: 3802 }, { name: 'ok', type: 16 },
];
const T = 1_796_314_250_893_123n; // microseconds since the Unix epoch

const session: Buffer[] = [
  msg.begin(0x1_9d9b90n, T, 731),
  msg.type(70_001, 'public', 'mood'),
  msg.relation(16_384, 'public', 'stock_movements', 'd', MOVEMENTS),
  msg.relation(16_390, 'public', 'stock_levels', 'f', [...LEVELS, { name: 'mood', type: 70_001, mod: 4 }]),
  msg.insert(16_384, ['42', 'SKU-1', 'BENCH', null, '3', '0', 'receipt', null, 'bench-1-1', 'bench-cdc', 'bulk receipt — ünïcödé ✓', '2026-12-03 16:01:44.123456+00']),
  msg.insert(16_384, ['43', 'SKU-2', 'BENCH', '7', '-1', '1', 'reservation', '4b0f8a4e-9a1b-4c51-8d0e-2f1e2a3b4c5d', '', 'api', '', '2026-12-03 17:01:44+01']),
  msg.updateOld(16_390, ['SKU-1', 'BENCH', '5', '0', '9', '2026-12-03 16:01:44.1+00', '2027-01-31', '{"a":[1,2]}', 't', 'calm'],
    ['SKU-1', 'BENCH', '8', '0', '10', '2026-12-03 16:01:45+00', UNCHANGED, UNCHANGED, 'f', 'calm']),
  msg.updateKey(16_390, ['SKU-1', 'BENCH', null, null, null, null, null, null, null, null], ['SKU-1', 'BENCH', '8', '1', '11', 'infinity', null, 'null', 'f', UNCHANGED]),
  msg.updateNew(16_390, ['SKU-2', 'BENCH', '0', '0', '1', '-infinity', null, null, 't', null]),
  msg.deleteKey(16_384, ['42', null, null, null, null, null, null, null, null, null, null, null]),
  msg.deleteOld(16_390, ['SKU-2', 'BENCH', '0', '0', '1', '2026-12-03 16:01:44.999999+00', null, null, 't', { binary: Buffer.from([1, 2, 3]) }]),
  msg.truncate([16_384, 16_390], 0b11),
  msg.origin(0x5_0000_0001n, 'elsewhere'),
  msg.message(1, 0x1_9d9ba0n, 'stockwire', Buffer.from('hello')),
  msg.commit(0x1_9d9b90n, 0x1_9d9bc8n, T),
  msg.begin(0n, T, 732), // a begin with a 0/0 commit LSN decodes as null
];

/** A message as JSON: parser functions left out, bigints spelled out, Dates as the ISO strings the envelope carries. */
function comparable(m: unknown): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => (typeof v === 'function' ? undefined : typeof v === 'bigint' ? `${v}n` : v)));
}

describe('PgoutputDecoder', () => {
  it('decodes every message kind exactly as pg-logical-replication does (timestamptz as ISO text)', () => {
    const library = new PgoutputPlugin({ protoVersion: 1, publicationNames: [] });
    const decoder = new PgoutputDecoder();
    for (const [i, bytes] of session.entries()) {
      // a chunk that is a view into a larger buffer, as the driver hands it over
      const view = Buffer.concat([Buffer.from('xxxx'), bytes, Buffer.from('yy')]).subarray(4, 4 + bytes.length);
      const ours = decoder.decode(view);
      const theirs = library.parse(Buffer.from(bytes)) as Pgoutput.Message;
      expect(comparable(ours), `message ${i} (${theirs.tag})`).toEqual(comparable(theirs));
    }
  });

  it('decodes values through the driver type parsers, timestamptz in UTC straight to the envelope ISO form', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(msg.relation(1, 'public', 'stock_levels', 'd', LEVELS));
    const m = decoder.decode(msg.insert(1, ['A', 'B', '3', '0', '9007199254740993', '2026-12-03 16:01:44.123456+00', '2027-01-31', '{"a":[1,2]}', 't'])) as Pgoutput.MessageInsert;
    expect(m.new).toEqual({ sku: 'A', location: 'B', on_hand: 3, reserved: 0, version: '9007199254740993', updated_at: '2026-12-03T16:01:44.123Z', expires_on: '2027-01-31', meta: { a: [1, 2] }, ok: true });
    const other = decoder.decode(msg.insert(1, ['A', 'B', '3', '0', '1', '2026-12-03 17:01:44.5+01', null, null, 'f'])) as Pgoutput.MessageInsert;
    expect(other.new.updated_at).toEqual(new Date('2026-12-03T16:01:44.500Z')); // not UTC text: the driver's Date
  });

  it('keeps a value that starts with a byte order mark, as the pg driver does for queries', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(msg.relation(1, 'public', 't', 'd', [{ name: 'note', type: 25 }]));
    expect((decoder.decode(msg.insert(1, ['\uFEFFhello'])) as Pgoutput.MessageInsert).new.note).toBe('\uFEFFhello');
  });

  it('rejects truncated messages, unknown tags and changes to relations it was never told about', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(msg.relation(1, 'public', 't', 'd', [{ name: 'note', type: 25 }]));
    const full = msg.insert(1, ['hello']);
    expect(() => decoder.decode(full.subarray(0, full.length - 2))).toThrow(/unexpected end/);
    expect(() => decoder.decode(Buffer.from('Z'))).toThrow(/unknown message/);
    expect(() => decoder.decode(msg.insert(2, ['x']))).toThrow(/before its relation message/);
  });
});
