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
}

/** Reads .data/secrets.json, creating it with fresh random values when missing. */
export async function loadDevSecrets(dataDir: string): Promise<DevSecrets> {
  const file = path.join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as DevSecrets;
  const secrets: DevSecrets = {
    JWT_SECRET: randomBytes(32).toString('base64url'),
    PII_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    PG_PASSWORD: randomBytes(18).toString('base64url'),
  };
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

/** The directory the embedded default keeps its state in. */
export function dataDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.DATA_DIR ?? '.data');
}
