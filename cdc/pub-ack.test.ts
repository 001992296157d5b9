import { headers } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { ackProblem } from './pub-ack.ts';

const reply = (body: string) => ({ data: new TextEncoder().encode(body), headers: undefined });

describe('ackProblem', () => {
  it('accepts a PubAck naming the stream, also for a duplicate', () => {
    expect(ackProblem(reply('{"stream":"CDC","seq":42}'))).toBeUndefined();
    expect(ackProblem(reply('{"stream":"CDC","seq":42,"duplicate":true}'))).toBeUndefined();
    expect(ackProblem(reply('{"stream":"CDC","domain":"hub","seq":1}'))).toBeUndefined();
  });

  it('rejects an error answer with its description and codes', () => {
    expect(ackProblem(reply('{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"},"stream":"CDC","seq":0}')))
      .toBe('message size exceeds maximum allowed (code 400, err_code 10054)');
    expect(ackProblem(reply('{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}'))).toMatch(/maximum messages exceeded/);
  });

  it('rejects a 503 status (no stream listens), other statuses, non-JSON and answers without a stream', () => {
    const h503 = headers(503, 'No Responders');
    expect(ackProblem({ data: new Uint8Array(0), headers: h503 })).toMatch(/no stream listens/);
    expect(ackProblem({ data: new Uint8Array(0), headers: headers(408, 'Request Timeout') })).toBe('status 408 Request Timeout');
    expect(ackProblem({ data: new Uint8Array(0), headers: undefined })).toBe('status unknown');
    expect(ackProblem(reply('not json'))).toBe('the acknowledgement is not JSON');
    expect(ackProblem(reply('{"seq":1}'))).toMatch(/no stream/);
    expect(ackProblem(reply('{"stream":"","seq":1}'))).toMatch(/no stream/);
  });
});
