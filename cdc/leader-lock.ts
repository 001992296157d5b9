/**
 * One active reader per slot: the active process holds a session-level Postgres advisory lock on a
 * dedicated connection; standbys poll for it. When the active process dies its connection closes, the
 * lock is released and a standby takes over within one poll interval.
 */
import pg from 'pg';

export interface Leadership {
  /** resolves if the lock connection is lost (the holder must stop reading at once) */
  lost: Promise<Error>;
  release(): Promise<void>;
}

/** Waits until this process holds the lock for `slot`, or `signal` aborts. */
export async function acquireLeadership(props: { databaseUrl: string; slot: string; pollMs: number; signal: AbortSignal; onWaiting?: () => void }): Promise<Leadership> {
  let waitingReported = false;
  for (;;) {
    props.signal.throwIfAborted();
    const client = new pg.Client({ connectionString: props.databaseUrl, application_name: `stockwire-cdc-leader:${props.slot}` });
    let lostResolve: (err: Error) => void = () => {};
    const lost = new Promise<Error>((resolve) => (lostResolve = resolve));
    client.on('error', (err) => lostResolve(err));
    client.on('end', () => lostResolve(new Error('leader lock connection closed')));
    try {
      await client.connect();
      const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(hashtext('stockwire-cdc'), hashtext($1)) AS ok", [props.slot]);
      if (rows[0]?.ok) {
        return { lost, release: () => client.end().catch(() => {}) };
      }
    } catch {
      // database unreachable: keep polling
    }
    await client.end().catch(() => {});
    if (!waitingReported) {
      props.onWaiting?.();
      waitingReported = true;
    }
    await new Promise((resolve) => setTimeout(resolve, props.pollMs));
  }
}
