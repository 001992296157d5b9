/**
 * npm run keys:rotate: every customer contact ends up sealed with the new active key, still decrypting
 * to the same value; rows already under it are left alone; a dry run changes nothing; a value whose key
 * is gone is reported (exit 1) and left as it is; one audit row per batch, without the data.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPiiCipher } from '../api/domain/pii-cipher.ts';
import { createHarness, TEST_PII_KEYS, type Harness } from './harness.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const NEW_KEY = { kid: 't2', key: Buffer.alloc(32, 9) };
const both = `${NEW_KEY.kid}:${NEW_KEY.key.toString('base64')},${TEST_PII_KEYS.map((k) => `${k.kid}:${k.key.toString('base64')}`).join(',')}`;
let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.product('PII-ROT');
  await h.fixtures.receive('PII-ROT', 'MAIN', 100);
  for (let i = 0; i < 7; i++) {
    await h.fixtures.order([{ sku: 'PII-ROT', qty: 1 }], { customer: { email: `person${i}@example.com`, phone: `+44 20 7946 00${i}` } });
  }
  await h.fixtures.order([{ sku: 'PII-ROT', qty: 1 }]); // no contact
});

afterAll(() => h.close());

function rotate(args: string[], piiKeys = both) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/keys-rotate.ts'), ...args], {
    cwd: ROOT, env: { ...process.env, DATABASE_URL: h.url, PII_KEYS: piiKeys, DATA_DIR: path.join(ROOT, '.data-test-unused') }, encoding: 'utf8',
  });
  return { code: run.status, out: run.stdout + run.stderr };
}

async function contacts() {
  const { rows } = await h.pool.query<{ id: string; customer_contact: string; version: string }>(
    'SELECT id, customer_contact, version FROM orders WHERE customer_contact IS NOT NULL ORDER BY id');
  return rows;
}

describe('npm run keys:rotate', () => {
  it('re-encrypts every contact with the active key, keeps the values, and is idempotent', async () => {
    const before = await contacts();
    expect(before).toHaveLength(7);
    expect(before.every((r) => r.customer_contact.startsWith('v1.t1.'))).toBe(true);
    const plain = before.map((r) => createPiiCipher(TEST_PII_KEYS).decrypt(r.customer_contact));

    const dry = rotate(['--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('7 order contacts are not under the active key t2');
    expect((await contacts()).map((r) => r.customer_contact)).toEqual(before.map((r) => r.customer_contact));

    const run = rotate(['--batch', '3']);
    expect(run.code, run.out).toBe(0);
    expect(run.out).toContain('done: 7 order contacts and 0 webhook secrets re-encrypted with t2');
    const after = await contacts();
    const newOnly = createPiiCipher([NEW_KEY]);
    expect(after.every((r) => r.customer_contact.startsWith('v1.t2.'))).toBe(true);
    expect(after.map((r) => newOnly.decrypt(r.customer_contact))).toEqual(plain);
    const audit = await h.pool.query("SELECT entity_id, after FROM audit_log WHERE action = 'pii.rotate' ORDER BY id");
    expect(audit.rows.map((r) => r.after.rotated)).toEqual([3, 3, 1]);
    expect(JSON.stringify(audit.rows)).not.toContain('example.com');

    const again = rotate([]);
    expect(again.code).toBe(0);
    expect(again.out).toContain('done: 0 order contacts');
  });

  it('reports a value whose key is no longer configured and leaves it as it is', async () => {
    const [first] = await contacts();
    const orphan = createPiiCipher([{ kid: 'gone', key: Buffer.alloc(32, 3) }]).encrypt('{"email":"lost@example.com"}');
    await h.pool.query('UPDATE orders SET customer_contact = $1 WHERE id = $2', [orphan, first!.id]);
    const run = rotate([]);
    expect(run.code).toBe(1);
    expect(run.out).toContain(`order ${first!.id}: contact sealed with a key not in PII_KEYS`);
    expect(run.out).not.toContain('lost@example.com');
    const { rows } = await h.pool.query('SELECT customer_contact FROM orders WHERE id = $1', [first!.id]);
    expect(rows[0].customer_contact).toBe(orphan);
  });
});
