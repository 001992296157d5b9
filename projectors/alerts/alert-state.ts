/**
 * Alert state that survives restarts, one NATS KV entry per subject: `low.<sku>.<location>` (is it
 * currently low, which crossing this is) and `lot.<id>` (which expiry alerts went out). Each entry also
 * holds its outbox: alerts decided but not yet delivered, with the channels still owed each one. The
 * projection writes an entry before it acknowledges the change that decided it, and again after every
 * delivery, so a redelivered change or a restarted process neither forgets an alert nor re-sends one to
 * a channel that already has it.
 */
import type { KV } from '@nats-io/kv';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Notice } from './alert-rules.ts';

export const DEFAULT_ALERT_BUCKET = 'stockwire_alerts';

/** One alert owed to some channels. */
export interface Outgoing {
  /** delivery id, unique per alert (dedup key + crossing + action): channels use it to de-duplicate */
  id: string;
  notice: Notice;
  /** channels that have not confirmed delivery yet */
  pending: string[];
}

export interface SubjectState {
  /** what is currently raised: 'low' for a (sku, location); 'expiring' / 'expired' for a lot */
  active: string[];
  /** low-stock crossings so far (each one is a new alert) */
  episode: number;
  outbox: Outgoing[];
}

export interface AlertState {
  /** Every entry, by key (read once at start). */
  load(): Promise<Map<string, SubjectState>>;
  save(key: string, state: SubjectState): Promise<void>;
}

/** KV keys allow [-/_=.A-Za-z0-9] with '.' as separator: anything else in a segment is escaped as =XX. */
function segment(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, (ch) => `=${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function lowStateKey(sku: string, location: string): string {
  return `low.${segment(sku)}.${segment(location)}`;
}

export function lotStateKey(lotId: string): string {
  return `lot.${segment(lotId)}`;
}

/** Opens (creating if missing) the alert bucket. */
export async function openAlertBucket(nc: NatsConnection, bucket: string): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: 1 });
}

export function createAlertState(props: { kv: KV }): AlertState {
  const { kv } = props;
  return {
    async load() {
      const out = new Map<string, SubjectState>();
      const keys: string[] = [];
      for await (const key of await kv.keys()) keys.push(key);
      for (let i = 0; i < keys.length; i += 64) {
        await Promise.all(keys.slice(i, i + 64).map(async (key) => {
          const entry = await kv.get(key);
          if (entry && entry.operation === 'PUT' && entry.value.length) out.set(key, entry.json<SubjectState>());
        }));
      }
      return out;
    },
    async save(key, state) {
      await kv.put(key, JSON.stringify(state));
    },
  };
}
