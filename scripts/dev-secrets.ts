/**
 * Secrets for the embedded default: generated once into .data/secrets.json (mode 0600) so a fresh
 * machine needs no set-up, and reused on every start. Environment variables always win. Production
 * (NODE_ENV=production) must provide its own.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface DevSecrets {
  JWT_SECRET: string;
  PII_KEYS: string;
  PG_PASSWORD: string;
  /** password of the stockwire_app role (API, sheet projectors) */
  PG_APP_PASSWORD: string;
  /** password of the stockwire_replication role (cdc) */
  PG_REPLICATION_PASSWORD: string;
}

function freshSecrets(): DevSecrets {
  return {
    JWT_SECRET: randomBytes(32).toString('base64url'),
    PII_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    PG_PASSWORD: randomBytes(18).toString('base64url'),
    PG_APP_PASSWORD: randomBytes(18).toString('base64url'),
    PG_REPLICATION_PASSWORD: randomBytes(18).toString('base64url'),
  };
}

/**
 * Reads .data/secrets.json, creating it with fresh random values when missing. A file from an older
 * version keeps its values and gains the secrets it lacks.
 */
export async function loadDevSecrets(dataDir: string): Promise<DevSecrets> {
  const file = path.join(dataDir, 'secrets.json');
  const stored = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as Partial<DevSecrets>) : undefined;
  const secrets: DevSecrets = { ...freshSecrets(), ...stored };
  if (stored && Object.keys(secrets).every((k) => k in stored)) return secrets;
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

/** The directory the embedded default keeps its state in. */
export function dataDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.DATA_DIR ?? '.data');
}
