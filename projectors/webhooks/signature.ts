/**
 * Standard Webhooks signing (https://www.standardwebhooks.com, spec 1.0): the secret is `whsec_` followed
 * by base64 of the key bytes; the signature is `v1,` + base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>"),
 * sent with the `webhook-id` and `webhook-timestamp` (unix seconds) it covers. The body signed must be the
 * exact bytes sent.
 */
import { createHmac, randomBytes } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 32;

/** A fresh endpoint secret: whsec_ + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString('base64')}`;
}

export class MalformedWebhookSecret extends Error {
  readonly code = 'malformed_webhook_secret';
}

/** The HMAC key a `whsec_` secret stands for. */
export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new MalformedWebhookSecret('a webhook secret starts with whsec_');
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  if (key.length < 24) throw new MalformedWebhookSecret('a webhook secret holds at least 24 bytes of key');
  return key;
}

/** The webhook-signature header value for one message. */
export function signMessage(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

/** The three Standard Webhooks headers for `body`, signed now. */
export function webhookHeaders(key: Buffer, id: string, body: string, nowMs: number): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signMessage(key, id, timestamp, body),
  };
}
