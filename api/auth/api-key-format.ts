/**
 * API key format and secret checking: `sw_<prefix>_<secret>`, prefix 12 base62 characters (the public
 * lookup part), secret 43 base64url characters (32 bytes = 256 bits from the CSPRNG). Only the prefix
 * and SHA-256(secret) are stored; a presented secret is compared with crypto.timingSafeEqual on
 * equal-length digests, so neither a wrong secret nor one of another length leaks timing or throws.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const PREFIX_LENGTH = 12;
const SECRET_BYTES = 32;
const KEY_SHAPE = /^sw_([0-9A-Za-z]{12})_([A-Za-z0-9_-]{43})$/;
/** compared against when the prefix is unknown, so both failures do the same work */
const DUMMY_HASH = createHash('sha256').update('stockwire: no such key').digest();

export interface NewApiKey {
  /** the full key, shown to its owner once */
  key: string;
  prefix: string;
  secretHash: Buffer;
}

/** True when `token` claims to be an API key (JWTs never start with sw_). */
export function looksLikeApiKey(token: string): boolean {
  return token.startsWith('sw_');
}

/** Makes a new random key. */
export function generateApiKey(): NewApiKey {
  let prefix = '';
  for (let i = 0; i < PREFIX_LENGTH; i++) prefix += BASE62[randomInt(BASE62.length)]; // randomInt: no modulo bias
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  return { key: `sw_${prefix}_${secret}`, prefix, secretHash: hashSecret(secret) };
}

/** Splits a key into prefix and secret, or undefined when it is not shaped like one. */
export function parseApiKey(text: string): { prefix: string; secret: string } | undefined {
  const m = KEY_SHAPE.exec(text);
  return m ? { prefix: m[1]!, secret: m[2]! } : undefined;
}

/** SHA-256 of a secret (see 0003_api_keys.up.sql for why a fast hash is right for 256-bit secrets). */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/**
 * Constant-time check of `presented` against a stored hash; `stored` undefined (unknown prefix) compares
 * against a dummy and fails. Never throws, whatever the lengths.
 */
export function secretMatches(stored: Uint8Array | undefined, presented: string): boolean {
  const expected = stored && stored.length === DUMMY_HASH.length ? stored : DUMMY_HASH;
  const equal = timingSafeEqual(hashSecret(presented), expected);
  return equal && expected !== DUMMY_HASH;
}
