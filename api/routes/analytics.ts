/**
 * Analytics over the stock ledger for the dashboard: turnover over a period, average daily consumption,
 * days of cover and reorder suggestions. Read-only; every figure's definition is in api/domain/analytics.ts.
 * Windows that end "now" use the request clock, so they are reproducible in tests. Bundles never appear.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, RouteDeps } from '../context.ts';
import { consumption, cover, periodDays, reorderSuggestions, turnover } from '../domain/analytics.ts';
import { protectedRoute } from './route-kit.ts';
import { IsoDate, jsonResponse, LocationCode } from './schemas.ts';

const MAX_PERIOD_DAYS = 731;

const WindowDays = z.coerce.number().int().min(1).max(365).default(28)
  .openapi({ description: 'demand window: confirmed units over the last `days` days before the request time' });

const TurnoverQuery = z.object({
  from: IsoDate.openapi({ description: 'first day of the period (UTC)' }),
  to: IsoDate.openapi({ description: 'last day of the period, included (UTC)' }),
  location: LocationCode.optional(),
  group: z.enum(['sku', 'category']).default('sku'),
})
  .refine((q) => q.from <= q.to, { message: 'from must not be after to', path: ['from'] })
  .refine((q) => periodDays(q.from, q.to) <= MAX_PERIOD_DAYS, { message: `the period is at most ${MAX_PERIOD_DAYS} days`, path: ['to'] });

const DemandQuery = z.object({ days: WindowDays, location: LocationCode.optional() });

const ReorderQuery = DemandQuery.extend({
  lead_time_days: z.coerce.number().int().min(0).max(365).default(7).openapi({ description: 'days from ordering to receiving' }),
  target_days: z.coerce.number().int().min(1).max(365).default(30).openapi({ description: 'days of cover an order should add after the lead time' }),
});

const TurnoverRow = z.object({
  key: z.string().openapi({ description: 'the sku, or the category when group=category' }),
  category: z.string(),
  units_sold: z.number().int().openapi({ description: 'confirmed units in the period' }),
  average_on_hand: z.number().openapi({ description: 'mean of the daily closing on hand (UTC day ends) over the period' }),
  turnover: z.number().nullable().openapi({ description: 'units_sold / average_on_hand; null when average_on_hand is 0' }),
}).openapi('TurnoverRow');

const Turnover = z.object({
  from: z.string(), to: z.string(), days: z.number().int(), location: z.string().nullable(), group: z.enum(['sku', 'category']),
  rows: z.array(TurnoverRow),
}).openapi('Turnover');

const WindowFields = { as_of: z.string(), days: z.number().int(), location: z.string().nullable() };

const Consumption = z.object({
  ...WindowFields,
  rows: z.array(z.object({
    sku: z.string(), location: z.string(), units_sold: z.number().int(),
    daily_consumption: z.number().openapi({ description: 'units_sold / days' }),
  })),
}).openapi('Consumption');

const Cover = z.object({
  ...WindowFields,
  rows: z.array(z.object({
    sku: z.string(), location: z.string(), on_hand: z.number().int(), reserved: z.number().int(),
    sellable: z.number().int().openapi({ description: 'available excluding expired lots' }),
    daily_consumption: z.number(),
    days_of_cover: z.number().nullable().openapi({ description: 'sellable / daily_consumption; null when there is no demand' }),
  })),
}).openapi('Cover');

const ReorderSuggestions = z.object({
  ...WindowFields,
  lead_time_days: z.number().int(),
  target_days: z.number().int(),
  rows: z.array(z.object({
    sku: z.string(), location: z.string(), sellable: z.number().int(), reorder_point: z.number().int(), reorder_qty: z.number().int(),
    daily_consumption: z.number(), days_of_cover: z.number(), below_reorder_point: z.boolean(),
    days_until_reorder_point: z.number().openapi({ description: '0 when already below the reorder point' }),
    reorder_on: z.string().openapi({ description: 'UTC date sellable stock is expected to reach the reorder point' }),
    suggested_qty: z.number().int().openapi({ description: '⌈daily × (lead_time_days + target_days) − sellable⌉, at least reorder_qty' }),
  })),
}).openapi('ReorderSuggestions');

const routes = {
  turnover: protectedRoute('analytics:read', {
    method: 'get', path: '/analytics/turnover', summary: 'Units sold, average on hand and turnover per sku or category over a period',
    request: { query: TurnoverQuery }, responses: { 200: jsonResponse('turnover per sku or category', Turnover) },
  }),
  consumption: protectedRoute('analytics:read', {
    method: 'get', path: '/analytics/consumption', summary: 'Average daily consumption per (sku, location) over the last days',
    request: { query: DemandQuery }, responses: { 200: jsonResponse('consumption per stock row', Consumption) },
  }),
  cover: protectedRoute('analytics:read', {
    method: 'get', path: '/analytics/cover', summary: 'Days of cover per (sku, location) at the current consumption rate',
    request: { query: DemandQuery }, responses: { 200: jsonResponse('days of cover, shortest first', Cover) },
  }),
  reorder: protectedRoute('analytics:read', {
    method: 'get', path: '/analytics/reorder-suggestions', summary: 'When each stock row reaches its reorder point, and how much to order',
    request: { query: ReorderQuery }, responses: { 200: jsonResponse('suggestions, most urgent first', ReorderSuggestions) },
  }),
};

export function analyticsRoutes(deps: RouteDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: deps.validationHook });

  app.openapi(routes.turnover, async (c) => {
    const q = c.req.valid('query');
    const rows = await turnover(deps.db, q);
    return c.json({ from: q.from, to: q.to, days: periodDays(q.from, q.to), location: q.location ?? null, group: q.group, rows }, 200);
  });

  app.openapi(routes.consumption, async (c) => {
    const q = c.req.valid('query');
    const asOf = deps.clock();
    const rows = await consumption(deps.db, { asOf, days: q.days, location: q.location });
    return c.json({ as_of: asOf.toISOString(), days: q.days, location: q.location ?? null, rows }, 200);
  });

  app.openapi(routes.cover, async (c) => {
    const q = c.req.valid('query');
    const asOf = deps.clock();
    const rows = await cover(deps.db, { asOf, days: q.days, location: q.location });
    return c.json({ as_of: asOf.toISOString(), days: q.days, location: q.location ?? null, rows }, 200);
  });

  app.openapi(routes.reorder, async (c) => {
    const q = c.req.valid('query');
    const asOf = deps.clock();
    const rows = await reorderSuggestions(deps.db, { asOf, days: q.days, location: q.location, leadTimeDays: q.lead_time_days, targetDays: q.target_days });
    return c.json({
      as_of: asOf.toISOString(), days: q.days, location: q.location ?? null, lead_time_days: q.lead_time_days, target_days: q.target_days, rows,
    }, 200);
  });

  return app;
}
