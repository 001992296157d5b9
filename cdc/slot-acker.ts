/**
 * "Acknowledge WAL only after JetStream acknowledged." Tracks, in commit order, the transactions the
 * reader has handed to the publisher and how many of their events are still unacknowledged, and
 * answers the furthest WAL position that is safe to confirm to Postgres: the end of the last transaction
 * such that it and every earlier one are fully acknowledged. Pure: no I/O.
 */
export interface TxTicket {
  endLsn: bigint;
  outstanding: number;
  closed: boolean;
}

export class SlotAcker {
  private readonly pending: TxTicket[] = [];
  private confirmed: bigint;

  constructor(startLsn = 0n) {
    this.confirmed = startLsn;
  }

  /** A transaction began; its events follow with track(), then close() with its commit record's end. */
  open(): TxTicket {
    const ticket: TxTicket = { endLsn: 0n, outstanding: 0, closed: false };
    this.pending.push(ticket);
    return ticket;
  }

  /** One more event of the transaction was sent to JetStream. */
  track(ticket: TxTicket): void {
    if (ticket.closed) throw new Error('event tracked after its transaction closed');
    ticket.outstanding += 1;
  }

  /** JetStream acknowledged one event of the transaction. */
  acked(ticket: TxTicket): void {
    if (ticket.outstanding <= 0) throw new Error('more acknowledgements than events');
    ticket.outstanding -= 1;
    this.advance();
  }

  /** The transaction's commit (ending at `endLsn`) was seen: no more events will be tracked for it. */
  close(ticket: TxTicket, endLsn: bigint): void {
    ticket.endLsn = endLsn;
    ticket.closed = true;
    this.advance();
  }

  private advance() {
    while (this.pending.length && this.pending[0]!.closed && this.pending[0]!.outstanding === 0) {
      const done = this.pending.shift()!;
      if (done.endLsn > this.confirmed) this.confirmed = done.endLsn;
    }
  }

  /** Nothing is in flight: every transaction seen so far is fully acknowledged. */
  idle(): boolean {
    return this.pending.length === 0;
  }

  /** Moves the safe position to a server position reported while idle (keepalive); never backwards. */
  passIdle(lsn: bigint): void {
    if (this.idle() && lsn > this.confirmed) this.confirmed = lsn;
  }

  /** Furthest position safe to confirm to Postgres. */
  safeLsn(): bigint {
    return this.confirmed;
  }

  /** Transactions not yet fully acknowledged. */
  inFlight(): number {
    return this.pending.length;
  }
}
