import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import type { ChangeEvent } from './envelope.ts';
import { EventBuilder, type EventBuilderSink, type TransactionInfo } from './event-builder.ts';

// ---- fake pgoutput messages (shapes as in pgoutput.types.d.ts) ----

function relation(name: string, relationOid = 16_384): Pgoutput.MessageRelation {
  return { tag: 'relation', relationOid, schema: 'public', name, replicaIdentity: 'default', columns: [], keyColumns: ['id'] };
}

/** Microseconds since the Unix epoch of a UTC instant, plus `extraMicros` below the millisecond. */
function micros(iso: string, extraMicros = 0): bigint {
  return BigInt(Date.parse(iso)) * 1000n + BigInt(extraMicros);
}

const T1 = micros('2026-12-03T10:20:30.123Z', 456);
const T1_ISO = '2026-12-03T10:20:30.123Z';

function begin(commitLsn: string | null, xid: number, commitTime: bigint = T1): Pgoutput.MessageBegin {
  return { tag: 'begin', commitLsn, commitTime, xid };
}

function commit(commitLsn: string | null, commitEndLsn: string | null, commitTime: bigint = T1): Pgoutput.MessageCommit {
  return { tag: 'commit', flags: 0, commitLsn, commitEndLsn, commitTime };
}

function insert(table: string, row: Record<string, unknown>): Pgoutput.MessageInsert {
  return { tag: 'insert', relation: relation(table), new: row };
}

function update(
  table: string,
  images: { old?: Record<string, unknown> | null; key?: Record<string, unknown> | null; new: Record<string, unknown> },
): Pgoutput.MessageUpdate {
  return { tag: 'update', relation: relation(table), old: images.old ?? null, key: images.key ?? null, new: images.new };
}

function del(table: string, images: { old?: Record<string, unknown> | null; key?: Record<string, unknown> | null }): Pgoutput.MessageDelete {
  return { tag: 'delete', relation: relation(table), old: images.old ?? null, key: images.key ?? null };
}

// ---- recording sink ----

type Call =
  | { kind: 'begin'; tx: TransactionInfo }
  | { kind: 'change'; event: ChangeEvent }
  | { kind: 'commit'; tx: TransactionInfo; changes: number };

/** Records every callback with a deep copy taken at call time, so later mutation cannot hide what was emitted. */
function recorder() {
  const calls: Call[] = [];
  const sink: EventBuilderSink = {
    begin: (tx) => calls.push({ kind: 'begin', tx: structuredClone(tx) }),
    change: (event) => calls.push({ kind: 'change', event: structuredClone(event) }),
    commit: (tx, changes) => calls.push({ kind: 'commit', tx: structuredClone(tx), changes }),
  };
  const changes = () => calls.flatMap((c) => (c.kind === 'change' ? [c.event] : []));
  return { sink, calls, changes };
}

/** Feeds messages at consecutive WAL positions starting at `from`. */
function feed(builder: EventBuilder, messages: Pgoutput.Message[], from = 0x19d9b00n) {
  messages.forEach((m, i) => builder.push(from + BigInt(i) * 0x10n, m));
}

describe('EventBuilder: one transaction', () => {
  it('emits begin, each change in order with index 0..n-1, then commit with the change count', () => {
    const { sink, calls } = recorder();
    const builder = new EventBuilder(sink);
    builder.push(0x19d9b00n, begin('00000000/019D9B90', 731));
    builder.push(0x19d9b00n, relation('stock_levels'));
    builder.push(0x19d9b10n, insert('stock_levels', { id: 1, qty: 5 }));
    builder.push(0x19d9b20n, update('stock_levels', { key: { id: 1 }, new: { id: 1, qty: 4 } }));
    builder.push(0x19d9b30n, del('stock_levels', { key: { id: 1 } }));
    builder.push(0x19d9b90n, commit('00000000/019D9B90', '00000000/019D9BC8'));

    const tx: TransactionInfo = { txId: 731, commitLsn: '0/19D9B90', commitEndLsn: 0x19d9bc8n, commitTime: T1_ISO };
    const source = { commitLsn: '0/19D9B90', txId: 731, commitTime: T1_ISO };
    expect(calls).toEqual([
      { kind: 'begin', tx: { ...tx, commitEndLsn: 0x19d9b90n } },
      {
        kind: 'change',
        event: { op: 'insert', table: 'stock_levels', before: null, after: { id: 1, qty: 5 }, source: { ...source, lsn: '0/19D9B10', index: 0, last: false } },
      },
      {
        kind: 'change',
        event: { op: 'update', table: 'stock_levels', before: { id: 1 }, after: { id: 1, qty: 4 }, source: { ...source, lsn: '0/19D9B20', index: 1, last: false } },
      },
      {
        kind: 'change',
        event: { op: 'delete', table: 'stock_levels', before: { id: 1 }, after: null, source: { ...source, lsn: '0/19D9B30', index: 2, last: true } },
      },
      { kind: 'commit', tx, changes: 3 },
    ]);
  });

  it('marks only the final change last, for transactions of many changes', () => {
    const { sink, changes } = recorder();
    const builder = new EventBuilder(sink);
    const n = 25;
    feed(builder, [begin('0/1000', 1), ...Array.from({ length: n }, (_, i) => insert('t', { i })), commit('0/1000', '0/1100')]);
    const events = changes();
    expect(events.map((e) => e.source.index)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(events.map((e) => e.after)).toEqual(Array.from({ length: n }, (_, i) => ({ i })));
    expect(events.map((e) => e.source.last)).toEqual([...Array<boolean>(n - 1).fill(false), true]);
  });

  it('marks a single-change transaction last with index 0', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/1000', 1), insert('t', { id: 1 }), commit('0/1000', '0/1100')]);
    expect(changes().map((e) => e.source)).toEqual([expect.objectContaining({ index: 0, last: true })]);
  });

  it('holds each change back until the next change or the commit arrives', () => {
    const { sink, calls, changes } = recorder();
    const builder = new EventBuilder(sink);
    builder.push(1n, begin('0/100', 9));
    builder.push(2n, insert('t', { id: 1 }));
    expect(changes()).toEqual([]);
    builder.push(3n, insert('t', { id: 2 }));
    expect(changes().map((e) => [e.after, e.source.last])).toEqual([[{ id: 1 }, false]]);
    builder.push(4n, insert('t', { id: 3 }));
    expect(changes().map((e) => [e.after, e.source.last])).toEqual([
      [{ id: 1 }, false],
      [{ id: 2 }, false],
    ]);
    expect(calls.some((c) => c.kind === 'commit')).toBe(false);
    builder.push(5n, commit('0/100', '0/180'));
    expect(changes().map((e) => [e.after, e.source.last])).toEqual([
      [{ id: 1 }, false],
      [{ id: 2 }, false],
      [{ id: 3 }, true],
    ]);
    expect(calls.at(-1)).toEqual({ kind: 'commit', tx: expect.objectContaining({ txId: 9 }), changes: 3 });
    expect(calls.at(-2)?.kind).toBe('change'); // the last change is emitted before the commit callback
  });

  it('formats each change at its own WAL position', () => {
    const { sink, changes } = recorder();
    const builder = new EventBuilder(sink);
    builder.push(0x9_00000000n, begin('A/10', 1));
    builder.push(0x9_ffffffffn, insert('t', { id: 1 }));
    builder.push(0xa_00000000n, insert('t', { id: 2 }));
    builder.push(0xa_00000010n, commit('A/10', 'A/40'));
    expect(changes().map((e) => e.source.lsn)).toEqual(['9/FFFFFFFF', 'A/0']);
    expect(changes().map((e) => e.source.commitLsn)).toEqual(['A/10', 'A/10']);
  });
});

describe('EventBuilder: transaction info', () => {
  it('normalises the zero-padded commit LSN the parser produces', () => {
    const { sink, calls, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0000000A/0000BEEF', 1), insert('t', { id: 1 }), commit('0000000A/0000BEEF', '0000000A/0000BF20')]);
    expect(calls[0]).toEqual({ kind: 'begin', tx: expect.objectContaining({ commitLsn: 'A/BEEF' }) });
    expect(changes()[0]!.source.commitLsn).toBe('A/BEEF');
    expect(calls.at(-1)).toEqual({ kind: 'commit', tx: expect.objectContaining({ commitLsn: 'A/BEEF', commitEndLsn: 0xa_0000bf20n }), changes: 1 });
  });

  it('turns the commit time (microseconds since the Unix epoch) into an ISO string, dropping sub-millisecond digits', () => {
    const { sink, calls, changes } = recorder();
    const t = micros('2025-01-31T23:59:59.999Z', 999);
    feed(new EventBuilder(sink), [begin('0/100', 1, t), insert('t', { id: 1 }), commit('0/100', '0/180', t)]);
    expect(calls[0]).toEqual({ kind: 'begin', tx: expect.objectContaining({ commitTime: '2025-01-31T23:59:59.999Z' }) });
    expect(changes()[0]!.source.commitTime).toBe('2025-01-31T23:59:59.999Z');
  });

  it('handles the epoch itself', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1, 0n), commit('0/100', '0/180', 0n)]);
    expect(calls[0]).toEqual({ kind: 'begin', tx: expect.objectContaining({ commitTime: '1970-01-01T00:00:00.000Z' }) });
  });

  it('reports the commit record end as commitEndLsn (a bigint) on commit', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink), [begin('00000001/00000010', 77), insert('t', { id: 1 }), commit('00000001/00000010', '00000001/00000048')]);
    const done = calls.at(-1);
    expect(done).toEqual({
      kind: 'commit',
      tx: { txId: 77, commitLsn: '1/10', commitEndLsn: 0x1_00000048n, commitTime: T1_ISO },
      changes: 1,
    });
  });

  it('falls back to the commit LSN as the end when the commit record carries none', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), commit('0/100', null)]);
    expect(calls.at(-1)).toEqual({ kind: 'commit', tx: expect.objectContaining({ commitEndLsn: 0x100n }), changes: 0 });
  });

  it('throws on a begin without a commit LSN', () => {
    const { sink, calls } = recorder();
    expect(() => new EventBuilder(sink).push(1n, begin(null, 1))).toThrow('begin without commit LSN');
    expect(calls).toEqual([]);
  });

  it('rejects a malformed commit LSN', () => {
    const { sink } = recorder();
    expect(() => new EventBuilder(sink).push(1n, begin('zz', 1))).toThrow(/not an LSN/);
  });
});

describe('EventBuilder: row images', () => {
  it('turns Date values into ISO strings and keeps everything else as parsed', () => {
    const { sink, changes } = recorder();
    const at = new Date('2026-12-03T08:00:00.250Z');
    const nested = { a: [1, 2] };
    feed(new EventBuilder(sink), [
      begin('0/100', 1),
      insert('t', { id: 1, sku: 'A-1', qty: 3, big: 12345678901234567890n, ok: true, note: null, at, meta: nested }),
      commit('0/100', '0/180'),
    ]);
    expect(changes()[0]!.after).toEqual({
      id: 1,
      sku: 'A-1',
      qty: 3,
      big: 12345678901234567890n,
      ok: true,
      note: null,
      at: '2026-12-03T08:00:00.250Z',
      meta: { a: [1, 2] },
    });
  });

  it('converts Dates in before and after images of updates and deletes', () => {
    const { sink, changes } = recorder();
    const d1 = new Date('2026-01-01T00:00:00.000Z');
    const d2 = new Date('2026-06-30T12:34:56.789Z');
    feed(new EventBuilder(sink), [
      begin('0/100', 1),
      update('t', { old: { id: 1, at: d1 }, key: { id: 1 }, new: { id: 1, at: d2 } }),
      del('t', { old: { id: 1, at: d2 } }),
      commit('0/100', '0/180'),
    ]);
    const [u, d] = changes();
    expect(u!.before).toEqual({ id: 1, at: '2026-01-01T00:00:00.000Z' });
    expect(u!.after).toEqual({ id: 1, at: '2026-06-30T12:34:56.789Z' });
    expect(d!.before).toEqual({ id: 1, at: '2026-06-30T12:34:56.789Z' });
  });

  it('copies rows instead of handing out or altering the decoded objects', () => {
    const { sink } = recorder();
    const at = new Date('2026-12-03T08:00:00.000Z');
    const row = { id: 1, at };
    const seen: ChangeEvent[] = [];
    const builder = new EventBuilder({ ...sink, change: (e) => seen.push(e) });
    feed(builder, [begin('0/100', 1), insert('t', row), commit('0/100', '0/180')]);
    expect(seen[0]!.after).toEqual({ id: 1, at: '2026-12-03T08:00:00.000Z' });
    expect(seen[0]!.after).not.toBe(row);
    expect(row.at).toBe(at); // the decoded row still holds its Date
  });

  it('update: before is the old image when present (replica identity full)', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [
      begin('0/100', 1),
      update('t', { old: { id: 1, qty: 5 }, key: { id: 1 }, new: { id: 1, qty: 4 } }),
      commit('0/100', '0/180'),
    ]);
    expect(changes()[0]).toMatchObject({ op: 'update', before: { id: 1, qty: 5 }, after: { id: 1, qty: 4 } });
  });

  it('update: before is the key when there is no old image (key changed, default identity)', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), update('t', { key: { id: 1 }, new: { id: 2, qty: 4 } }), commit('0/100', '0/180')]);
    expect(changes()[0]).toMatchObject({ op: 'update', before: { id: 1 }, after: { id: 2, qty: 4 } });
  });

  it('update: before is null when neither old image nor key is sent', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), update('t', { new: { id: 1, qty: 4 } }), commit('0/100', '0/180')]);
    expect(changes()[0]).toEqual(expect.objectContaining({ op: 'update', before: null, after: { id: 1, qty: 4 } }));
  });

  it('delete: before is the old image when present, after is null', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), del('t', { old: { id: 1, qty: 5 }, key: { id: 1 } }), commit('0/100', '0/180')]);
    expect(changes()[0]).toEqual(expect.objectContaining({ op: 'delete', table: 't', before: { id: 1, qty: 5 }, after: null }));
  });

  it('delete: before is the key when there is no old image, after is null', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), del('t', { key: { id: 7 } }), commit('0/100', '0/180')]);
    expect(changes()[0]).toEqual(expect.objectContaining({ op: 'delete', before: { id: 7 }, after: null }));
  });

  it('insert: before is null', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), insert('t', { id: 1 }), commit('0/100', '0/180')]);
    expect(changes()[0]).toEqual(expect.objectContaining({ op: 'insert', before: null, after: { id: 1 } }));
  });
});

describe('EventBuilder: several transactions', () => {
  it('restarts the index per transaction and carries each transaction\'s own info', () => {
    const { sink, calls } = recorder();
    const t2 = micros('2026-12-03T10:20:31.000Z');
    feed(new EventBuilder(sink), [
      begin('0/200', 10),
      insert('a', { id: 1 }),
      insert('a', { id: 2 }),
      commit('0/200', '0/230'),
      begin('0/300', 11, t2),
      del('a', { key: { id: 1 } }),
      commit('0/300', '0/330', t2),
    ]);
    const summary = calls.map((c) =>
      c.kind === 'change' ? ['change', c.event.source.txId, c.event.source.commitLsn, c.event.source.index, c.event.source.last] : [c.kind, c.tx.txId, c.tx.commitLsn],
    );
    expect(summary).toEqual([
      ['begin', 10, '0/200'],
      ['change', 10, '0/200', 0, false],
      ['change', 10, '0/200', 1, true],
      ['commit', 10, '0/200'],
      ['begin', 11, '0/300'],
      ['change', 11, '0/300', 0, true],
      ['commit', 11, '0/300'],
    ]);
    expect(calls.filter((c) => c.kind === 'commit').map((c) => (c.kind === 'commit' ? c.changes : -1))).toEqual([2, 1]);
    const second = calls.find((c) => c.kind === 'change' && c.event.source.txId === 11);
    expect(second?.kind === 'change' && second.event.source.commitTime).toBe('2026-12-03T10:20:31.000Z');
  });

  it('calls commit with 0 for a transaction with no changes', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 5), relation('t'), commit('0/100', '0/140')]);
    expect(calls).toEqual([
      { kind: 'begin', tx: expect.objectContaining({ txId: 5 }) },
      { kind: 'commit', tx: { txId: 5, commitLsn: '0/100', commitEndLsn: 0x140n, commitTime: T1_ISO }, changes: 0 },
    ]);
  });

  it('ignores relation, type, origin, truncate and message records without consuming an index', () => {
    const { sink, calls, changes } = recorder();
    const rel = relation('t');
    const others: Pgoutput.Message[] = [
      rel,
      { tag: 'type', typeOid: 1, typeSchema: 'public', typeName: 'thing' },
      { tag: 'origin', originLsn: '0/10', originName: 'elsewhere' },
      { tag: 'truncate', cascade: false, restartIdentity: false, relations: [rel] },
      { tag: 'message', flags: 1, transactional: true, messageLsn: '0/20', prefix: 'p', content: new Uint8Array([1]) },
    ];
    feed(new EventBuilder(sink), [begin('0/100', 1), ...others, insert('t', { id: 1 }), ...others, insert('t', { id: 2 }), ...others, commit('0/100', '0/180')]);
    expect(changes().map((e) => [e.source.index, e.source.last])).toEqual([
      [0, false],
      [1, true],
    ]);
    expect(calls.at(-1)).toMatchObject({ kind: 'commit', changes: 2 });
  });

  it('ignores records outside a transaction that are not changes', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink), [relation('t'), { tag: 'type', typeOid: 1, typeSchema: 'public', typeName: 'x' }]);
    expect(calls).toEqual([]);
  });
});

describe('EventBuilder: tables filter', () => {
  it('drops other tables\' changes without consuming an index, and marks the last kept change last', () => {
    const { sink, calls, changes } = recorder();
    feed(new EventBuilder(sink, new Set(['stock_levels'])), [
      begin('0/100', 1),
      insert('orders', { id: 1 }),
      insert('stock_levels', { id: 10 }),
      update('orders', { key: { id: 1 }, new: { id: 1 } }),
      update('stock_levels', { key: { id: 10 }, new: { id: 10, qty: 1 } }),
      del('stock_levels', { key: { id: 11 } }),
      del('orders', { key: { id: 1 } }), // filtered change after the last kept one
      commit('0/100', '0/180'),
    ]);
    expect(changes().map((e) => [e.table, e.op, e.source.index, e.source.last])).toEqual([
      ['stock_levels', 'insert', 0, false],
      ['stock_levels', 'update', 1, false],
      ['stock_levels', 'delete', 2, true],
    ]);
    expect(calls.at(-1)).toMatchObject({ kind: 'commit', changes: 3 });
  });

  it('calls commit with 0 for a transaction whose changes are all filtered out', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink, new Set(['stock_levels'])), [begin('0/100', 1), insert('orders', { id: 1 }), del('orders', { key: { id: 1 } }), commit('0/100', '0/180')]);
    expect(calls.map((c) => c.kind)).toEqual(['begin', 'commit']);
    expect(calls.at(-1)).toMatchObject({ kind: 'commit', changes: 0 });
  });

  it('keeps every listed table', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink, new Set(['a', 'b'])), [begin('0/100', 1), insert('a', { id: 1 }), insert('c', { id: 2 }), insert('b', { id: 3 }), commit('0/100', '0/180')]);
    expect(changes().map((e) => [e.table, e.source.index])).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
  });

  it('keeps every table when no filter is given', () => {
    const { sink, changes } = recorder();
    feed(new EventBuilder(sink), [begin('0/100', 1), insert('a', { id: 1 }), insert('c', { id: 2 }), commit('0/100', '0/180')]);
    expect(changes().map((e) => e.table)).toEqual(['a', 'c']);
  });

  it('drops everything with an empty filter', () => {
    const { sink, calls } = recorder();
    feed(new EventBuilder(sink, new Set()), [begin('0/100', 1), insert('a', { id: 1 }), commit('0/100', '0/180')]);
    expect(calls.map((c) => c.kind)).toEqual(['begin', 'commit']);
  });
});

describe('EventBuilder: changes outside a transaction', () => {
  it.each([
    ['insert', insert('t', { id: 1 })],
    ['update', update('t', { key: { id: 1 }, new: { id: 1 } })],
    ['delete', del('t', { key: { id: 1 } })],
  ] as const)('throws on a %s before any begin', (tag, message) => {
    const { sink, calls } = recorder();
    expect(() => new EventBuilder(sink).push(1n, message)).toThrow(`${tag} outside a transaction`);
    expect(calls).toEqual([]);
  });

  it('throws on a change after the transaction committed', () => {
    const { sink } = recorder();
    const builder = new EventBuilder(sink);
    feed(builder, [begin('0/100', 1), insert('t', { id: 1 }), commit('0/100', '0/180')]);
    expect(() => builder.push(0x200n, insert('t', { id: 2 }))).toThrow('insert outside a transaction');
  });

  it('throws even for a table the filter would drop', () => {
    const { sink } = recorder();
    expect(() => new EventBuilder(sink, new Set(['a'])).push(1n, insert('other', { id: 1 }))).toThrow('insert outside a transaction');
  });

  it('throws on a commit outside a transaction', () => {
    const { sink, calls } = recorder();
    const builder = new EventBuilder(sink);
    expect(() => builder.push(1n, commit('0/100', '0/180'))).toThrow('commit outside a transaction');
    feed(builder, [begin('0/100', 1), commit('0/100', '0/180')]);
    expect(() => builder.push(1n, commit('0/100', '0/180'))).toThrow('commit outside a transaction');
    expect(calls.map((c) => c.kind)).toEqual(['begin', 'commit']);
  });
});

describe('EventBuilder: malformed sequences fail loudly', () => {
  it('throws on a begin while a transaction is still open, instead of dropping its changes', () => {
    const { sink } = recorder();
    const builder = new EventBuilder(sink);
    builder.push(0x10n, begin('0/100', 1));
    builder.push(0x20n, insert('stock_levels', { id: 1 }));
    expect(() => builder.push(0x30n, begin('0/200', 2))).toThrow(/still open/);
  });

  it('throws on a delete that carries neither old row nor key', () => {
    const { sink } = recorder();
    const builder = new EventBuilder(sink);
    builder.push(0x10n, begin('0/100', 1));
    expect(() => builder.push(0x20n, del('stock_levels', { old: null, key: null }))).toThrow(/replica identity/);
  });
});
