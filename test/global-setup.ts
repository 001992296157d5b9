/**
 * Starts one Postgres for the whole test run — a private embedded cluster with wal_level=logical on a
 * free port in a temporary directory (or TEST_DATABASE_URL's server when set) — and migrates a template
 * database that every test file clones, so files run in parallel on their own fresh databases.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { ensureDatabase, startEmbeddedCluster, type EmbeddedCluster } from '../db/cluster.ts';
import { migrateUp } from '../db/migrator.ts';
import { freePort } from './free-port.ts';

export const TEMPLATE_DB = 'stockwire_template';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

let cluster: EmbeddedCluster | undefined;
let dir: string | undefined;

export async function setup(project: TestProject) {
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-test-pg-'));
    await chmod(dir, 0o755); // the cluster runs as user postgres, which must reach its data directory
    cluster = await startEmbeddedCluster({ dataDir: path.join(dir, 'pg'), port: await freePort(), password: 'test' });
    adminUrl = cluster.adminUrl;
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.end();
  const templateUrl = await ensureDatabase(adminUrl, TEMPLATE_DB);
  const pool = new pg.Pool({ connectionString: templateUrl, max: 1 });
  await migrateUp({ pool });
  await pool.end();
  project.provide('pgAdminUrl', adminUrl);
}

export async function teardown() {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}
