/**
 * Products and bundles: create, change, deactivate. A bundle (kind "bundle") holds no stock; its
 * components are active simple products. Products with history are never deleted, only deactivated.
 */
import { sql, type Kysely } from 'kysely';
import type { Category, Database } from '../../db/schema.ts';
import { ApiError, NotFound, Unprocessable, VersionConflict } from '../errors.ts';
import type { CommandOutcome, CommandTx } from './command-runner.ts';

export interface ProductView {
  sku: string;
  name: string;
  category: Category;
  kind: 'simple' | 'bundle';
  lot_tracked: boolean;
  reorder_point: number;
  reorder_qty: number;
  active: boolean;
  version: number;
  updated_at: string;
  components?: { sku: string; qty: number }[];
}

export interface ProductInput {
  sku: string;
  name: string;
  category: Category;
  lot_tracked?: boolean | undefined;
  reorder_point?: number | undefined;
  reorder_qty?: number | undefined;
  components?: { sku: string; qty: number }[] | undefined;
}

export interface ProductPatch {
  name?: string | undefined;
  reorder_point?: number | undefined;
  reorder_qty?: number | undefined;
  active?: boolean | undefined;
  components?: { sku: string; qty: number }[] | undefined;
  expected_version?: number | undefined;
}

/** Reads products (with bundle components) by sku, or all of a category when `skus` is undefined. */
export async function listProducts(trx: Kysely<Database>, filter: { skus?: string[]; category?: string | undefined; active?: boolean | undefined }): Promise<ProductView[]> {
  let query = trx.selectFrom('products').selectAll().orderBy('sku');
  if (filter.skus) query = query.where('sku', 'in', filter.skus.length ? filter.skus : ['\u0000']);
  if (filter.category) query = query.where('category', '=', filter.category as Category);
  if (filter.active !== undefined) query = query.where('active', '=', filter.active);
  const products = await query.execute();
  const bundles = products.filter((p) => p.kind === 'bundle').map((p) => p.sku);
  const components = bundles.length
    ? await trx.selectFrom('bundle_components').selectAll().where('bundle_sku', 'in', bundles).orderBy('component_sku').execute()
    : [];
  return products.map((p) => ({
    sku: p.sku, name: p.name, category: p.category, kind: p.kind, lot_tracked: p.lot_tracked,
    reorder_point: p.reorder_point, reorder_qty: p.reorder_qty, active: p.active, version: Number(p.version),
    updated_at: new Date(p.updated_at).toISOString(),
    ...(p.kind === 'bundle'
      ? { components: components.filter((c) => c.bundle_sku === p.sku).map((c) => ({ sku: c.component_sku, qty: c.qty })) }
      : {}),
  }));
}

async function readProduct(trx: CommandTx, sku: string): Promise<ProductView> {
  const [product] = await listProducts(trx, { skus: [sku] });
  if (!product) throw new NotFound('product', sku);
  return product;
}

async function writeComponents(trx: CommandTx, bundleSku: string, components: { sku: string; qty: number }[]) {
  if (components.length === 0) throw new Unprocessable('bundle_empty', 'a bundle needs at least one component');
  const skus = components.map((c) => c.sku);
  if (new Set(skus).size !== skus.length) throw new Unprocessable('duplicate_component', 'each component may appear once');
  const found = await trx.selectFrom('products').select(['sku', 'kind', 'active']).where('sku', 'in', skus).execute();
  const bad = skus.filter((s) => {
    const p = found.find((f) => f.sku === s);
    return !p || p.kind !== 'simple' || !p.active || s === bundleSku;
  });
  if (bad.length) throw new Unprocessable('invalid_component', `components must be active simple products: ${bad.join(', ')}`, { skus: bad });
  await trx.deleteFrom('bundle_components').where('bundle_sku', '=', bundleSku).execute();
  await trx.insertInto('bundle_components').values(components.map((c) => ({ bundle_sku: bundleSku, component_sku: c.sku, qty: c.qty }))).execute();
}

/** Creates a product, or a bundle when components are given (category "bundle" requires them). */
export async function createProduct(trx: CommandTx, input: ProductInput): Promise<CommandOutcome<ProductView>> {
  const isBundle = input.components !== undefined || input.category === 'bundle';
  if (isBundle && input.category !== 'bundle') {
    throw new Unprocessable('bundle_category', 'a product with components is a bundle: use category "bundle"');
  }
  if (isBundle && input.lot_tracked) throw new Unprocessable('bundle_lot_tracked', 'a bundle cannot be lot-tracked; its components may be');
  const inserted = await trx
    .insertInto('products')
    .values({
      sku: input.sku, name: input.name, category: input.category, kind: isBundle ? 'bundle' : 'simple',
      lot_tracked: input.lot_tracked ?? false, reorder_point: input.reorder_point ?? 0, reorder_qty: input.reorder_qty ?? 0,
    })
    .onConflict((oc) => oc.column('sku').doNothing())
    .returning('sku')
    .executeTakeFirst();
  if (!inserted) throw new ApiError(409, 'already_exists', `product ${input.sku} already exists`, { sku: input.sku });
  if (isBundle) await writeComponents(trx, input.sku, input.components ?? []);
  const body = await readProduct(trx, input.sku);
  return { status: 201, body, audit: { action: 'product.create', entity: 'product', entityId: input.sku, after: body } };
}

/** Changes a product's editable fields (optionally guarded by expected_version). */
export async function updateProduct(trx: CommandTx, sku: string, patch: ProductPatch): Promise<CommandOutcome<ProductView>> {
  const locked = await sql<{ sku: string }>`SELECT sku FROM products WHERE sku = ${sku} FOR UPDATE`.execute(trx);
  if (locked.rows.length === 0) throw new NotFound('product', sku);
  const before = await readProduct(trx, sku);
  if (patch.expected_version !== undefined && patch.expected_version !== before.version) throw new VersionConflict(before);
  if (patch.components && before.kind !== 'bundle') throw new Unprocessable('not_a_bundle', `${sku} is not a bundle`);
  const fields = {
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.reorder_point !== undefined ? { reorder_point: patch.reorder_point } : {}),
    ...(patch.reorder_qty !== undefined ? { reorder_qty: patch.reorder_qty } : {}),
    ...(patch.active !== undefined ? { active: patch.active } : {}),
  };
  if (patch.components) {
    await writeComponents(trx, sku, patch.components);
    // a component change is a change of the bundle: bump its version too
    if (Object.keys(fields).length === 0) await trx.updateTable('products').set({ name: before.name }).where('sku', '=', sku).execute();
  }
  if (Object.keys(fields).length) await trx.updateTable('products').set(fields).where('sku', '=', sku).execute();
  const body = await readProduct(trx, sku);
  return { status: 200, body, audit: { action: 'product.update', entity: 'product', entityId: sku, before, after: body } };
}
