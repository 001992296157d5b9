/**
 * npm run replay -- --projector NAME (--from-seq N | --from-time ISO): re-deliver the CDC stream to one
 * projector from a sequence or time (NATS_URL, CDC_STREAM as for cdc).
 */
import { connect } from '@nats-io/transport-node';
import { parseArgs } from 'node:util';
import { replayProjector } from '../projectors/runtime/replay.ts';

const { values } = parseArgs({ options: { projector: { type: 'string' }, 'from-seq': { type: 'string' }, 'from-time': { type: 'string' } } });
if (!values.projector || (values['from-seq'] === undefined) === (values['from-time'] === undefined)) {
  process.stderr.write('usage: npm run replay -- --projector NAME (--from-seq N | --from-time 2026-12-01T00:00:00Z)\n');
  process.exit(2);
}
const fromTime = values['from-time'] ? new Date(values['from-time']) : undefined;
if (fromTime && Number.isNaN(fromTime.getTime())) {
  process.stderr.write(`--from-time is not a date: ${values['from-time']}\n`);
  process.exit(2);
}
const nc = await connect({ servers: (process.env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',') });
try {
  await replayProjector({ nc, stream: process.env.CDC_STREAM ?? 'CDC', projector: values.projector, fromSeq: values['from-seq'] ? Number(values['from-seq']) : undefined, fromTime });
  process.stdout.write(`projector ${values.projector} will re-apply the stream from ${values['from-seq'] ? `sequence ${values['from-seq']}` : fromTime!.toISOString()}\n`);
} finally {
  await nc.close();
}
