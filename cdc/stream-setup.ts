/**
 * Creates the CDC stream (or updates its limits): file storage, subjects <prefix>.>, a de-duplication
 * window longer than any reader restart, and limits on age and size.
 */
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

export interface CdcStreamSettings {
  stream: string;
  subjectPrefix: string;
  maxAgeHours: number;
  maxBytes: number;
  duplicateWindowSeconds: number;
  replicas?: number;
}

const NANOS_PER_SECOND = 1_000_000_000;

export async function ensureCdcStream(nc: NatsConnection, s: CdcStreamSettings): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config: Partial<StreamConfig> & { name: string } = {
    name: s.stream,
    subjects: [`${s.subjectPrefix}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: Math.round(s.maxAgeHours * 3600 * NANOS_PER_SECOND),
    max_bytes: s.maxBytes,
    duplicate_window: s.duplicateWindowSeconds * NANOS_PER_SECOND,
    num_replicas: s.replicas ?? 1,
  };
  try {
    await jsm.streams.info(s.stream);
    await jsm.streams.update(s.stream, config);
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
    await jsm.streams.add(config);
  }
}
