import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SlotAcker, type TxTicket } from './slot-acker.ts';

/** Opens a transaction and tracks `events` events on it. */
function txWith(acker: SlotAcker, events: number): TxTicket {
  const t = acker.open();
  for (let i = 0; i < events; i += 1) acker.track(t);
  return t;
}

describe('SlotAcker basics', () => {
  it('starts idle at the given position (0 by default)', () => {
    expect(new SlotAcker().safeLsn()).toBe(0n);
    const acker = new SlotAcker(500n);
    expect(acker.safeLsn()).toBe(500n);
    expect(acker.idle()).toBe(true);
    expect(acker.inFlight()).toBe(0);
  });

  it('confirms a transaction only once it is closed and every event is acknowledged', () => {
    const acker = new SlotAcker();
    const t = txWith(acker, 2);
    expect(acker.idle()).toBe(false);
    expect(acker.inFlight()).toBe(1);
    acker.close(t, 100n);
    expect(acker.safeLsn()).toBe(0n);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(0n);
    expect(acker.inFlight()).toBe(1);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(100n);
    expect(acker.idle()).toBe(true);
    expect(acker.inFlight()).toBe(0);
  });

  it('does not confirm a fully acknowledged transaction before its commit is seen', () => {
    const acker = new SlotAcker();
    const t = txWith(acker, 2);
    acker.acked(t);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(0n);
    expect(acker.idle()).toBe(false);
    acker.close(t, 100n);
    expect(acker.safeLsn()).toBe(100n);
    expect(acker.idle()).toBe(true);
  });

  it('confirms a transaction with no events as soon as it closes', () => {
    const acker = new SlotAcker(10n);
    const t = acker.open();
    expect(acker.idle()).toBe(false);
    expect(acker.safeLsn()).toBe(10n);
    acker.close(t, 40n);
    expect(acker.safeLsn()).toBe(40n);
    expect(acker.idle()).toBe(true);
  });

  it('never moves backwards when a transaction ends before the start position', () => {
    const acker = new SlotAcker(500n);
    const t = txWith(acker, 1);
    acker.close(t, 100n);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(500n);
    expect(acker.idle()).toBe(true);
  });

  it('allows tracking more events after some were acknowledged', () => {
    const acker = new SlotAcker();
    const t = txWith(acker, 1);
    acker.acked(t);
    acker.track(t);
    acker.close(t, 100n);
    expect(acker.safeLsn()).toBe(0n);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(100n);
  });
});

describe('SlotAcker across transactions', () => {
  it('advances over the contiguous prefix of complete transactions only', () => {
    const acker = new SlotAcker();
    const a = txWith(acker, 1);
    acker.close(a, 100n);
    const b = txWith(acker, 1);
    acker.close(b, 200n);
    const c = txWith(acker, 1);
    acker.close(c, 300n);

    acker.acked(a);
    acker.acked(c);
    expect(acker.safeLsn()).toBe(100n); // b is still pending; c must wait behind it
    expect(acker.inFlight()).toBe(2);

    acker.acked(b);
    expect(acker.safeLsn()).toBe(300n); // b completes: b and the already-complete c are confirmed together
    expect(acker.idle()).toBe(true);
  });

  it('does not move when a later transaction is fully acknowledged while an earlier one is pending', () => {
    const acker = new SlotAcker();
    const a = txWith(acker, 1);
    acker.close(a, 100n);
    const b = txWith(acker, 3);
    acker.close(b, 200n);
    acker.acked(b);
    acker.acked(b);
    acker.acked(b);
    expect(acker.safeLsn()).toBe(0n);
    expect(acker.inFlight()).toBe(2);
    expect(acker.idle()).toBe(false);
    acker.acked(a);
    expect(acker.safeLsn()).toBe(200n);
  });

  it('handles acknowledgements interleaved out of order across transactions', () => {
    const acker = new SlotAcker();
    const a = txWith(acker, 2);
    acker.close(a, 100n);
    const b = txWith(acker, 2);
    acker.close(b, 200n);
    const c = txWith(acker, 2);
    acker.close(c, 300n);

    acker.acked(c);
    acker.acked(b);
    acker.acked(a);
    acker.acked(c);
    expect(acker.safeLsn()).toBe(0n); // a still has one outstanding
    acker.acked(b);
    expect(acker.safeLsn()).toBe(0n);
    acker.acked(a);
    expect(acker.safeLsn()).toBe(300n); // a was the only blocker: everything confirms at once
    expect(acker.inFlight()).toBe(0);
  });

  it('is blocked by an earlier transaction that is acknowledged but not yet closed', () => {
    const acker = new SlotAcker();
    const a = txWith(acker, 1);
    acker.acked(a);
    const b = txWith(acker, 0);
    acker.close(b, 200n);
    expect(acker.safeLsn()).toBe(0n);
    expect(acker.inFlight()).toBe(2);
    acker.close(a, 100n);
    expect(acker.safeLsn()).toBe(200n);
  });

  it('stops at the first incomplete transaction and resumes from there', () => {
    const acker = new SlotAcker();
    const a = txWith(acker, 1);
    acker.close(a, 100n);
    const b = txWith(acker, 1);
    acker.close(b, 200n);
    const c = txWith(acker, 1);
    acker.acked(a);
    acker.acked(b);
    expect(acker.safeLsn()).toBe(200n);
    acker.acked(c);
    expect(acker.safeLsn()).toBe(200n); // c not closed
    acker.close(c, 300n);
    expect(acker.safeLsn()).toBe(300n);
  });
});

describe('SlotAcker.passIdle', () => {
  it('moves the position forward while idle', () => {
    const acker = new SlotAcker(100n);
    acker.passIdle(150n);
    expect(acker.safeLsn()).toBe(150n);
    acker.passIdle(400n);
    expect(acker.safeLsn()).toBe(400n);
  });

  it('never moves the position backwards', () => {
    const acker = new SlotAcker(100n);
    acker.passIdle(50n);
    expect(acker.safeLsn()).toBe(100n);
    acker.passIdle(300n);
    acker.passIdle(200n);
    expect(acker.safeLsn()).toBe(300n);
    acker.passIdle(300n);
    expect(acker.safeLsn()).toBe(300n);
  });

  it('is ignored while a transaction is in flight, even one with no events yet', () => {
    const acker = new SlotAcker();
    const t = acker.open();
    acker.passIdle(1_000n);
    expect(acker.safeLsn()).toBe(0n);
    acker.track(t);
    acker.passIdle(1_000n);
    expect(acker.safeLsn()).toBe(0n);
    acker.close(t, 100n);
    acker.passIdle(1_000n); // closed but not acknowledged: still in flight
    expect(acker.safeLsn()).toBe(0n);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(100n);
    acker.passIdle(1_000n);
    expect(acker.safeLsn()).toBe(1_000n);
  });

  it('does not affect the pending transactions', () => {
    const acker = new SlotAcker();
    const t = txWith(acker, 1);
    acker.passIdle(5_000n);
    acker.close(t, 100n);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(100n);
  });
});

describe('SlotAcker misuse', () => {
  it('throws on an acknowledgement for a transaction with nothing outstanding', () => {
    const acker = new SlotAcker();
    const t = acker.open();
    expect(() => acker.acked(t)).toThrow('more acknowledgements than events');
    expect(acker.safeLsn()).toBe(0n);
    expect(acker.inFlight()).toBe(1);
  });

  it('throws on more acknowledgements than tracked events', () => {
    const acker = new SlotAcker();
    const t = txWith(acker, 2);
    acker.acked(t);
    acker.acked(t);
    expect(() => acker.acked(t)).toThrow('more acknowledgements than events');
    expect(t.outstanding).toBe(0);
    acker.close(t, 100n);
    expect(acker.safeLsn()).toBe(100n);
    expect(() => acker.acked(t)).toThrow('more acknowledgements than events'); // after confirmation too
    expect(acker.safeLsn()).toBe(100n);
  });

  it('throws when an event is tracked after its transaction closed', () => {
    const acker = new SlotAcker();
    const t = txWith(acker, 1);
    acker.close(t, 100n);
    expect(() => acker.track(t)).toThrow('event tracked after its transaction closed');
    expect(t.outstanding).toBe(1);
    acker.acked(t);
    expect(acker.safeLsn()).toBe(100n);
  });

  it('throws when tracking on a transaction that closed with no events', () => {
    const acker = new SlotAcker();
    const t = acker.open();
    acker.close(t, 100n);
    expect(() => acker.track(t)).toThrow('event tracked after its transaction closed');
    expect(acker.idle()).toBe(true);
    expect(acker.safeLsn()).toBe(100n);
  });
});

/**
 * Random runs shaped like the reader's use: transactions arrive one at a time (open, track…, close at an
 * increasing commit end), JetStream acknowledges events in any order, keepalives come at any time.
 */
type Op =
  | { kind: 'open' }
  | { kind: 'track' }
  | { kind: 'close'; gap: bigint }
  | { kind: 'ack'; pick: number }
  | { kind: 'passIdle'; delta: bigint };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'open' } as const), weight: 2 },
  { arbitrary: fc.constant({ kind: 'track' } as const), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('close' as const), gap: fc.bigInt({ min: 1n, max: 1_000n }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('passIdle' as const), delta: fc.bigInt({ min: -500n, max: 500n }) }), weight: 2 },
);

interface ModelTx {
  ticket: TxTicket;
  outstanding: number;
  closed: boolean;
  endLsn: bigint | undefined;
}

describe('SlotAcker (randomized)', () => {
  it('never confirms past the earliest incomplete transaction and never moves backwards', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1_000n }), fc.array(opArb, { maxLength: 300, size: 'max' }), (start, ops) => {
        const acker = new SlotAcker(start);
        const txs: ModelTx[] = [];
        let current: ModelTx | undefined; // the open (not yet closed) transaction, at most one
        let wal = start; // furthest WAL position the "server" has reported or committed
        let expected = start; // independent model of the safe position
        let previousSafe = acker.safeLsn();
        // (safeLsn, earliest incomplete transaction) after every step; checked once every endLsn is known
        const snapshots: { safe: bigint; earliest: ModelTx | undefined }[] = [];

        for (const op of ops) {
          switch (op.kind) {
            case 'open':
              if (current) break;
              current = { ticket: acker.open(), outstanding: 0, closed: false, endLsn: undefined };
              txs.push(current);
              break;
            case 'track':
              if (!current) break;
              acker.track(current.ticket);
              current.outstanding += 1;
              break;
            case 'close':
              if (!current) break;
              wal += op.gap;
              current.endLsn = wal;
              current.closed = true;
              acker.close(current.ticket, wal);
              current = undefined;
              break;
            case 'ack': {
              const withOutstanding = txs.filter((t) => t.outstanding > 0);
              if (!withOutstanding.length) break;
              const t = withOutstanding[op.pick % withOutstanding.length]!;
              acker.acked(t.ticket);
              t.outstanding -= 1;
              break;
            }
            case 'passIdle': {
              const lsn = wal + op.delta < 0n ? 0n : wal + op.delta;
              const wasIdle = txs.every((t) => t.closed && t.outstanding === 0);
              acker.passIdle(lsn);
              if (wasIdle && lsn > expected) expected = lsn;
              if (!current && lsn > wal) wal = lsn; // later commits end after any reported position
              break;
            }
          }
          // model: confirm the contiguous prefix of complete transactions
          while (txs.length && txs[0]!.closed && txs[0]!.outstanding === 0) {
            const done = txs.shift()!;
            if (done.endLsn! > expected) expected = done.endLsn!;
          }

          const safe = acker.safeLsn();
          expect(safe).toBeGreaterThanOrEqual(previousSafe); // monotonic
          previousSafe = safe;
          expect(safe).toBe(expected);
          expect(acker.inFlight()).toBe(txs.length);
          expect(acker.idle()).toBe(txs.length === 0);
          const earliest = txs.find((t) => !t.closed || t.outstanding > 0);
          expect(earliest).toBe(txs[0]);
          snapshots.push({ safe, earliest });
        }

        // the open transaction's commit, were it to arrive, would end after everything reported so far
        if (current) current.endLsn = wal + 1n;
        for (const { safe, earliest } of snapshots) {
          if (earliest) expect(safe).toBeLessThanOrEqual(earliest.endLsn!);
        }
      }),
      { numRuns: 500 },
    );
  });
});
