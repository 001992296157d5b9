import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createPiiCipher, UnknownKey } from './pii-cipher.ts';

const OLD = { kid: 'k2025', key: randomBytes(32) };
const NEW = { kid: 'k2026', key: randomBytes(32) };

function b64urlDecode(part: string) {
  return Buffer.from(part, 'base64url');
}

/** Flips one bit in the given dot-separated part of a sealed value. */
function flip(sealed: string, partIndex: number): string {
  const parts = sealed.split('.');
  const bytes = b64urlDecode(parts[partIndex]!);
  bytes[0] = bytes[0]! ^ 0x01;
  parts[partIndex] = bytes.toString('base64url');
  return parts.join('.');
}

describe('createPiiCipher', () => {
  it('round-trips text, including non-ASCII and the empty string', () => {
    const cipher = createPiiCipher([NEW]);
    for (const plain of ['{"email":"ada@example.com"}', 'Zoë Ünïcødé ✓ 電話', '']) {
      expect(cipher.decrypt(cipher.encrypt(plain))).toBe(plain);
    }
  });

  it('seals as v1.<kid>.<iv>.<tag>.<data> with the first key and never shows the plaintext', () => {
    const cipher = createPiiCipher([NEW, OLD]);
    const sealed = cipher.encrypt('ada@example.com');
    const parts = sealed.split('.');
    expect(parts).toHaveLength(5);
    expect(parts[0]).toBe('v1');
    expect(parts[1]).toBe('k2026');
    expect(b64urlDecode(parts[2]!)).toHaveLength(12);
    expect(b64urlDecode(parts[3]!)).toHaveLength(16);
    expect(sealed).not.toContain('ada');
    expect(cipher.activeKeyId).toBe('k2026');
  });

  it('uses a fresh IV per value: the same plaintext seals differently each time', () => {
    const cipher = createPiiCipher([NEW]);
    const a = cipher.encrypt('same');
    const b = cipher.encrypt('same');
    expect(a).not.toBe(b);
    expect(cipher.decrypt(a)).toBe('same');
    expect(cipher.decrypt(b)).toBe('same');
  });

  it('decrypts a value sealed with the old key after rotation, while the old key is still configured second', () => {
    const before = createPiiCipher([OLD]);
    const sealedOld = before.encrypt('+44 20 7946 0000');
    const rotated = createPiiCipher([NEW, OLD]);
    expect(rotated.decrypt(sealedOld)).toBe('+44 20 7946 0000');
    // new values are sealed with the new key
    const sealedNew = rotated.encrypt('new');
    expect(sealedNew.split('.')[1]).toBe('k2026');
    // a reader that only knows the old key cannot read them
    expect(() => before.decrypt(sealedNew)).toThrow(UnknownKey);
  });

  it('fails with UnknownKey for a kid that is not configured (old key retired)', () => {
    const sealedOld = createPiiCipher([OLD]).encrypt('secret');
    const retired = createPiiCipher([NEW]);
    expect(() => retired.decrypt(sealedOld)).toThrow(UnknownKey);
    try {
      retired.decrypt(sealedOld);
    } catch (err) {
      expect((err as UnknownKey).code).toBe('unknown_pii_key');
    }
  });

  it('refuses a value sealed under a known kid but with a different key (wrong key material)', () => {
    const impostor = createPiiCipher([{ kid: NEW.kid, key: randomBytes(32) }]);
    const sealed = impostor.encrypt('secret');
    expect(() => createPiiCipher([NEW]).decrypt(sealed)).toThrow();
  });

  it('detects tampering with the data, the tag or the iv', () => {
    const cipher = createPiiCipher([NEW]);
    const sealed = cipher.encrypt('{"email":"ada@example.com"}');
    for (const part of [2, 3, 4]) {
      expect(() => cipher.decrypt(flip(sealed, part)), `part ${part}`).toThrow();
    }
    // swapping the kid for another configured key also fails authentication
    const two = createPiiCipher([NEW, OLD]);
    const swapped = sealed.replace('.k2026.', '.k2025.');
    expect(() => two.decrypt(swapped)).toThrow();
  });

  it('refuses malformed values: wrong version, missing parts', () => {
    const cipher = createPiiCipher([NEW]);
    const sealed = cipher.encrypt('x');
    expect(() => cipher.decrypt(sealed.replace(/^v1\./, 'v2.'))).toThrow(UnknownKey);
    expect(() => cipher.decrypt(sealed.split('.').slice(0, 4).join('.'))).toThrow(UnknownKey);
    expect(() => cipher.decrypt('')).toThrow(UnknownKey);
    expect(() => cipher.decrypt('plain text')).toThrow(UnknownKey);
  });

  it('refuses to start without a key', () => {
    expect(() => createPiiCipher([])).toThrow(/at least one key/);
  });
});
