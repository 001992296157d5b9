/**
 * Encrypts personal data (customer contact) in the application with AES-256-GCM. Each value carries the
 * id of the key that sealed it ("v1.<kid>.<iv>.<tag>.<data>", base64url parts), so keys can rotate: the
 * first configured key encrypts, every configured key decrypts.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface PiiKey {
  kid: string;
  key: Buffer;
}

export class UnknownKey extends Error {
  readonly code = 'unknown_pii_key';
}

/** Returns encrypt/decrypt functions over `keys` (first = active). */
export function createPiiCipher(keys: readonly PiiKey[]) {
  const active = keys[0];
  if (!active) throw new Error('PII_KEYS must hold at least one key');
  const byId = new Map(keys.map((k) => [k.kid, k.key]));

  function encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', active!.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const parts = [iv, cipher.getAuthTag(), data].map((b) => b.toString('base64url'));
    return ['v1', active!.kid, ...parts].join('.');
  }

  function decrypt(sealed: string): string {
    const [version, kid, iv, tag, data] = sealed.split('.');
    const key = kid ? byId.get(kid) : undefined;
    if (version !== 'v1' || !key || !iv || !tag || data === undefined) throw new UnknownKey(`cannot decrypt value sealed with key ${kid}`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
  }

  return { encrypt, decrypt, activeKeyId: active.kid };
}

export type PiiCipher = ReturnType<typeof createPiiCipher>;
