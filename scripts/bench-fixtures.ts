/**
 * The database every measurement starts from: migrated, the demo catalog seeded, and a BENCH-style
 * location holding a million units of each simple (non-lot) product, so a load never runs out of stock.
 */
import { createCommandRunner } from '../api/domain/command-runner.ts';
import { receiveStock } from '../api/domain/stock-commands.ts';
import { openDatabase } from '../db/connection.ts';
import { migrateUp } from '../db/migrator.ts';
import { DEMO_PRODUCTS, seedDemoCatalog } from './demo-catalog.ts';

/** SKUs a load can order in any quantity: the demo catalog's products without lots. */
export const BENCH_SKUS = DEMO_PRODUCTS.filter((p) => p.category !== 'beauty').map((p) => p.sku);

export async function prepareBenchDatabase(props: { url: string; location: string; actor: string; beforeSeed?: (pool: import('pg').Pool) => Promise<void> }) {
  const { db, pool, close } = openDatabase({ url: props.url, max: 4 });
  try {
    await migrateUp({ pool });
    await props.beforeSeed?.(pool);
    const runCommand = createCommandRunner({ db });
    await seedDemoCatalog({ db, runCommand });
    await db.insertInto('locations').values({ code: props.location, name: `${props.actor} location` }).onConflict((oc) => oc.column('code').doNothing()).execute();
    for (const sku of BENCH_SKUS) {
      const requestId = `stock-${sku}`;
      await runCommand({ actor: props.actor, requestId }, (trx) =>
        receiveStock({ trx, actor: props.actor, requestId, now: new Date() }, { sku, location: props.location, qty: 1_000_000 }));
    }
  } finally {
    await close();
  }
}
