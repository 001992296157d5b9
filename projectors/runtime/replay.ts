/**
 * Replay: points a projector's durable consumer back at a stream sequence or a point in time. The
 * consumer is recreated with the new start; a running projector notices its consumer changed, restarts
 * its loop and re-applies from there (effects are idempotent, so replaying applied events is harmless).
 */
import { AckPolicy, DeliverPolicy, jetstreamManager, type ConsumerConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

export async function replayProjector(props: { nc: NatsConnection; stream: string; projector: string; fromSeq?: number; fromTime?: Date }) {
  if ((props.fromSeq === undefined) === (props.fromTime === undefined)) throw new Error('give exactly one of fromSeq or fromTime');
  const jsm = await jetstreamManager(props.nc);
  await jsm.consumers.delete(props.stream, props.projector).catch(() => {});
  const start: Partial<ConsumerConfig> = props.fromSeq !== undefined
    ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: props.fromSeq }
    : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: props.fromTime!.toISOString() };
  await jsm.consumers.add(props.stream, {
    durable_name: props.projector, ack_policy: AckPolicy.Explicit, ack_wait: 30_000_000_000, max_deliver: 10, max_ack_pending: 20_000, ...start,
  });
}
