/**
 * Reads JetStream's answer to a publish (the PubAck JSON on the publish's reply subject). Only an
 * answer naming the stream that stored the message (or recognised it as a duplicate) counts as an
 * acknowledgement; an error answer, a status message (503: no stream listens on the subject) or anything
 * unreadable is a failure, so the reader confirms nothing past that message.
 */
import type { Msg } from '@nats-io/transport-node';

const decoder = new TextDecoder();

/** Why a reply to a publish is not a successful PubAck, or undefined if it is one. */
export function ackProblem(msg: Pick<Msg, 'data' | 'headers'>): string | undefined {
  if (msg.data.length === 0) {
    // a status message: 503 means no stream listens on the subject
    const code = msg.headers?.code;
    return code === 503 ? 'no stream listens on the subject (503 no responders)' : `status ${code ?? 'unknown'} ${msg.headers?.description ?? ''}`.trim();
  }
  let ack: { stream?: unknown; error?: { code?: number; err_code?: number; description?: string } };
  try {
    ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
  } catch {
    return 'the acknowledgement is not JSON';
  }
  if (ack.error) return `${ack.error.description ?? 'error'} (code ${ack.error.code ?? '?'}, err_code ${ack.error.err_code ?? '?'})`;
  if (typeof ack.stream !== 'string' || ack.stream === '') return 'invalid acknowledgement (no stream)';
  return undefined;
}
