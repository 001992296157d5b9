/**
 * Catalog: products and bundles (create, read, change, deactivate) and stock locations.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, RouteDeps } from '../context.ts';
import { createProduct, listProducts, updateProduct } from '../domain/catalog.ts';
import { ApiError, NotFound } from '../errors.ts';
import { executeCommand, protectedRoute } from './route-kit.ts';
import { IdempotencyHeader, jsonBody, jsonResponse, LocationCode, Product, Sku } from './schemas.ts';

const Component = z.object({ sku: Sku, qty: z.number().int().min(1).max(1000) });
const Name = z.string().trim().min(1).max(200);

const CreateProduct = z
  .object({
    sku: Sku,
    name: Name,
    category: z.enum(['sheets', 'linens', 'beauty', 'bundle']),
    lot_tracked: z.boolean().optional(),
    reorder_point: z.number().int().min(0).max(1_000_000).optional(),
    reorder_qty: z.number().int().min(0).max(1_000_000).optional(),
    components: z.array(Component).min(1).max(20).optional().openapi({ description: 'makes the product a bundle' }),
  })
  .openapi('CreateProduct');

const PatchProduct = z
  .object({
    name: Name.optional(),
    reorder_point: z.number().int().min(0).max(1_000_000).optional(),
    reorder_qty: z.number().int().min(0).max(1_000_000).optional(),
    active: z.boolean().optional(),
    components: z.array(Component).min(1).max(20).optional(),
    expected_version: z.number().int().min(1).optional(),
  })
  .refine((p) => Object.keys(p).some((k) => k !== 'expected_version'), 'nothing to change')
  .openapi('PatchProduct');

const ReorderPoint = z
  .object({
    reorder_point: z.number().int().min(0).max(1_000_000),
    expected_version: z.number().int().min(1).optional().openapi({ description: "refuse with 409 version_conflict unless the product still has this version" }),
  })
  .openapi('ReorderPoint');

const Location = z.object({ code: LocationCode, name: Name }).openapi('Location');
const SkuParam = z.object({ sku: Sku });

const routes = {
  list: protectedRoute('catalog:read', {
    method: 'get', path: '/products', summary: 'Products and bundles',
    request: { query: z.object({ category: z.enum(['sheets', 'linens', 'beauty', 'bundle']).optional(), active: z.enum(['true', 'false']).optional() }) },
    responses: { 200: jsonResponse('products', z.object({ products: z.array(Product) })) },
  }),
  one: protectedRoute('catalog:read', {
    method: 'get', path: '/products/{sku}', summary: 'One product', request: { params: SkuParam },
    responses: { 200: jsonResponse('the product', Product) },
  }),
  create: protectedRoute('catalog:write', {
    method: 'post', path: '/products', summary: 'Create a product, or a bundle when components are given',
    request: { ...jsonBody(CreateProduct), headers: IdempotencyHeader }, responses: { 201: jsonResponse('created', Product) },
  }),
  update: protectedRoute('catalog:write', {
    method: 'patch', path: '/products/{sku}', summary: 'Change name, reorder settings, components or active flag',
    request: { params: SkuParam, ...jsonBody(PatchProduct) }, responses: { 200: jsonResponse('changed', Product) },
  }),
  reorderPoint: protectedRoute('catalog:reorder', {
    method: 'put', path: '/products/{sku}/reorder-point', summary: 'Set the reorder point only (the narrow change the sheet-sync role may make)',
    request: { params: SkuParam, ...jsonBody(ReorderPoint), headers: IdempotencyHeader }, responses: { 200: jsonResponse('changed', Product) },
  }),
  remove: protectedRoute('catalog:write', {
    method: 'delete', path: '/products/{sku}', summary: 'Deactivate a product (history is kept; it can no longer be ordered)',
    request: { params: SkuParam }, responses: { 200: jsonResponse('deactivated', Product) },
  }),
  locations: protectedRoute('catalog:read', {
    method: 'get', path: '/locations', summary: 'Stock locations',
    responses: { 200: jsonResponse('locations', z.object({ locations: z.array(Location) })) },
  }),
  createLocation: protectedRoute('locations:write', {
    method: 'post', path: '/locations', summary: 'Add a stock location',
    request: { ...jsonBody(Location), headers: IdempotencyHeader }, responses: { 201: jsonResponse('created', Location) },
  }),
};

export function productRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.list, async (c) => {
    const q = c.req.valid('query');
    const products = await listProducts(deps.db, { category: q.category, active: q.active === undefined ? undefined : q.active === 'true' });
    return c.json({ products }, 200);
  });

  app.openapi(routes.one, async (c) => {
    const { sku } = c.req.valid('param');
    const [product] = await listProducts(deps.db, { skus: [sku] });
    if (!product) throw new NotFound('product', sku);
    return c.json(product, 200);
  });

  app.openapi(routes.create, async (c) => {
    const body = c.req.valid('json');
    const result = await executeCommand(c, deps, body, (ctx) => createProduct(ctx.trx, body));
    return c.json(result.body, 201);
  });

  app.openapi(routes.update, async (c) => {
    const { sku } = c.req.valid('param');
    const body = c.req.valid('json');
    const result = await executeCommand(c, deps, body, (ctx) => updateProduct(ctx.trx, sku, body));
    return c.json(result.body, 200);
  });

  app.openapi(routes.reorderPoint, async (c) => {
    const { sku } = c.req.valid('param');
    const body = c.req.valid('json');
    const result = await executeCommand(c, deps, body, (ctx) => updateProduct(ctx.trx, sku, body));
    return c.json(result.body, 200);
  });

  app.openapi(routes.remove, async (c) => {
    const { sku } = c.req.valid('param');
    const result = await executeCommand(c, deps, { sku }, (ctx) => updateProduct(ctx.trx, sku, { active: false }));
    return c.json(result.body, 200);
  });

  app.openapi(routes.locations, async (c) => {
    const locations = await deps.db.selectFrom('locations').select(['code', 'name']).orderBy('code').execute();
    return c.json({ locations }, 200);
  });

  app.openapi(routes.createLocation, async (c) => {
    const body = c.req.valid('json');
    const result = await executeCommand(c, deps, body, async ({ trx }) => {
      const row = await trx.insertInto('locations').values(body).onConflict((oc) => oc.column('code').doNothing()).returning(['code', 'name']).executeTakeFirst();
      if (!row) throw new ApiError(409, 'already_exists', `location ${body.code} already exists`, { code: body.code });
      return { status: 201 as const, body: row, audit: { action: 'location.create', entity: 'location', entityId: row.code, after: row } };
    });
    return c.json(result.body, 201);
  });

  return app;
}
