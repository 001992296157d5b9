/**
 * Analytics over the stock ledger: turnover, consumption, days of cover and reorder suggestions. Each figure
 * is one function running one query; the comment above it is the definition the dashboard relies on.
 *
 * Conventions every figure keeps:
 *   * "sold" means confirmed: −delta_on_hand of reason 'confirm' (reservations and releases move only
 *     reserved; adjustments, counts and transfers are not demand);
 *   * days are UTC days; a period from..to covers [from 00:00Z, to+1 00:00Z);
 *   * bundles are never stocked and never appear: a bundle sale is confirmed on its components, so the
 *     demand already shows there;
 *   * available stock is `sellable` as GET /v1/stock computes it: on_hand − reserved, and for lot-tracked
 *     products no more than what unexpired lots (expires_on after today) hold.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { dayOf } from './orders.ts';

const DAY_MS = 86_400_000;

export interface TurnoverQuery {
  /** first day of the period, YYYY-MM-DD (UTC) */
  from: string;
  /** last day of the period, inclusive */
  to: string;
  location?: string | undefined;
  group: 'sku' | 'category';
}

export interface TurnoverRow {
  /** the sku, or the category when grouped by category */
  key: string;
  category: string;
  units_sold: number;
  average_on_hand: number;
  /** units_sold / average_on_hand; null when nothing was on hand on average */
  turnover: number | null;
}

export interface DemandWindow {
  /** the request clock's now: demand is counted over (asOf − days, asOf] */
  asOf: Date;
  days: number;
  location?: string | undefined;
}

export interface ConsumptionRow {
  sku: string;
  location: string;
  units_sold: number;
  daily_consumption: number;
}

export interface CoverRow {
  sku: string;
  location: string;
  on_hand: number;
  reserved: number;
  sellable: number;
  daily_consumption: number;
  /** sellable / daily_consumption; null when there is no demand (infinite cover) */
  days_of_cover: number | null;
}

export interface ReorderQuery extends DemandWindow {
  leadTimeDays: number;
  targetDays: number;
}

export interface ReorderSuggestion {
  sku: string;
  location: string;
  sellable: number;
  reorder_point: number;
  reorder_qty: number;
  daily_consumption: number;
  days_of_cover: number;
  below_reorder_point: boolean;
  /** days from as_of until sellable reaches the reorder point at the current rate (0 when already below) */
  days_until_reorder_point: number;
  /** the UTC date of that crossing */
  reorder_on: string;
  suggested_qty: number;
}

/** Days in the period from..to, both included. */
export function periodDays(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS) + 1;
}

/** Confirmed units per (sku, location) in the window (asOf − days, asOf] — the CTE every demand figure shares. */
function demandCte(w: DemandWindow) {
  const since = new Date(w.asOf.getTime() - w.days * DAY_MS).toISOString();
  return sql`demand AS (
    SELECT m.sku, m.location, (-sum(m.delta_on_hand))::bigint AS units
      FROM stock_movements m
     WHERE m.reason = 'confirm'
       AND m.created_at > ${since}::timestamptz AND m.created_at <= ${w.asOf.toISOString()}::timestamptz
       AND (${w.location ?? null}::text IS NULL OR m.location = ${w.location ?? null})
     GROUP BY m.sku, m.location)`;
}

/** The sellable quantity of stock row `s` of product `p` on `today` (the expression GET /v1/stock uses). */
function sellableExpr(today: string) {
  return sql`CASE WHEN p.lot_tracked THEN LEAST(s.on_hand - s.reserved, coalesce((
      SELECT sum(l.on_hand - l.reserved) FROM lots l
       WHERE l.sku = s.sku AND l.location = s.location AND l.expires_on > ${today}::date), 0))
    ELSE s.on_hand - s.reserved END`;
}

/**
 * Turnover over the period from..to (N days), per sku or per category:
 *   units_sold      = −Σ delta_on_hand of 'confirm' movements in [from 00:00Z, to+1 00:00Z);
 *   closing(d)      = Σ delta_on_hand of movements before the end of day d (the on hand reconstructed from
 *                     the ledger);
 *   average_on_hand = (1/N) Σ_d closing(d);
 *   turnover        = units_sold / average_on_hand, null when average_on_hand is 0.
 * Computed without a row per day: stock_levels.on_hand equals the whole ledger's sum (the ledger trigger
 * keeps it so), hence closing(d) = on_hand − Σ of movements at or after the end of d, and a movement on UTC
 * day m counts against min(N, m − from) of the period's day ends. Only movements since `from` are read.
 * A category's units and average on hand are the sums over its skus.
 */
export async function turnover(db: Kysely<Database>, q: TurnoverQuery): Promise<TurnoverRow[]> {
  const days = periodDays(q.from, q.to);
  const location = q.location ?? null;
  const perSku = sql`
    WITH scope AS (
      SELECT s.sku, p.category, sum(s.on_hand)::bigint AS on_hand
        FROM stock_levels s JOIN products p ON p.sku = s.sku
       WHERE p.kind = 'simple' AND (${location}::text IS NULL OR s.location = ${location})
       GROUP BY s.sku, p.category
    ), since_from AS (
      SELECT m.sku,
             (-sum(m.delta_on_hand) FILTER (WHERE m.reason = 'confirm'
                AND m.created_at < ((${q.to}::date + 1)::timestamp AT TIME ZONE 'UTC')))::bigint AS sold,
             sum(m.delta_on_hand::bigint
                 * LEAST(${days}::int, (m.created_at AT TIME ZONE 'UTC')::date - ${q.from}::date)) AS later_day_ends
        FROM stock_movements m
       WHERE m.created_at >= (${q.from}::date::timestamp AT TIME ZONE 'UTC')
         AND (${location}::text IS NULL OR m.location = ${location})
       GROUP BY m.sku
    ), per_sku AS (
      SELECT sc.sku AS key, sc.category, coalesce(f.sold, 0) AS sold,
             sc.on_hand - coalesce(f.later_day_ends, 0)::numeric / ${days}::int AS avg_on_hand
        FROM scope sc LEFT JOIN since_from f ON f.sku = sc.sku
    )`;
  const grouped = q.group === 'category'
    ? sql`${perSku}, per_group AS (
        SELECT category AS key, category, sum(sold) AS sold, sum(avg_on_hand) AS avg_on_hand FROM per_sku GROUP BY category)`
    : sql`${perSku}, per_group AS (SELECT * FROM per_sku)`;
  const { rows } = await sql<TurnoverRow>`${grouped}
    SELECT key, category, sold::int AS units_sold, avg_on_hand::float8 AS average_on_hand,
           CASE WHEN avg_on_hand > 0 THEN (sold / avg_on_hand)::float8 END AS turnover
      FROM per_group ORDER BY key`.execute(db);
  return rows;
}

/**
 * Average daily consumption per (sku, location) with a stock row: confirmed units in (asOf − days, asOf]
 * divided by days (0 for a row with no sales).
 */
export async function consumption(db: Kysely<Database>, w: DemandWindow): Promise<ConsumptionRow[]> {
  const location = w.location ?? null;
  const { rows } = await sql<ConsumptionRow>`
    WITH ${demandCte(w)}
    SELECT s.sku, s.location, coalesce(d.units, 0)::int AS units_sold,
           (coalesce(d.units, 0)::float8 / ${w.days}::int) AS daily_consumption
      FROM stock_levels s JOIN products p ON p.sku = s.sku AND p.kind = 'simple'
      LEFT JOIN demand d ON d.sku = s.sku AND d.location = s.location
     WHERE ${location}::text IS NULL OR s.location = ${location}
     ORDER BY s.sku, s.location`.execute(db);
  return rows;
}

/**
 * Days of cover per (sku, location): sellable / daily consumption over the window, i.e.
 * sellable × days / confirmed units; null when nothing was sold (no demand: infinite cover).
 * Shortest cover first, rows without demand last.
 */
export async function cover(db: Kysely<Database>, w: DemandWindow): Promise<CoverRow[]> {
  const location = w.location ?? null;
  const { rows } = await sql<CoverRow>`
    WITH ${demandCte(w)}, stock AS MATERIALIZED (
      SELECT s.sku, s.location, s.on_hand, s.reserved, (${sellableExpr(dayOf(w.asOf))})::bigint AS sellable,
             coalesce(d.units, 0) AS units
        FROM stock_levels s JOIN products p ON p.sku = s.sku AND p.kind = 'simple'
        LEFT JOIN demand d ON d.sku = s.sku AND d.location = s.location
       WHERE ${location}::text IS NULL OR s.location = ${location}
    )
    SELECT sku, location, on_hand, reserved, sellable::int AS sellable,
           units::float8 / ${w.days}::int AS daily_consumption,
           CASE WHEN units > 0 THEN (sellable * ${w.days}::int)::float8 / units END AS days_of_cover
      FROM stock
     ORDER BY days_of_cover ASC NULLS LAST, sku, location`.execute(db);
  return rows;
}

/**
 * Reorder suggestions for active products with demand in the window (rate r = units / days):
 *   days_until_reorder_point = max(0, (sellable − reorder_point) / r), and reorder_on is the UTC date of
 *     asOf + that many days (today when already below);
 *   suggested_qty = max(⌈r × (lead_time + target_days) − sellable⌉, reorder_qty, 0) — reorder_qty acts as a
 *     minimum order when it is above 0;
 *   listed only when sellable < reorder_point or the crossing is within lead_time + target_days;
 *   most urgent first: earliest crossing, then shortest cover.
 * Integer arithmetic (× days before ÷ units) keeps the rounding exact.
 */
export async function reorderSuggestions(db: Kysely<Database>, q: ReorderQuery): Promise<ReorderSuggestion[]> {
  const location = q.location ?? null;
  const horizon = q.leadTimeDays + q.targetDays;
  const { rows } = await sql<ReorderSuggestion & { reorder_on: string }>`
    WITH ${demandCte(q)}, stock AS MATERIALIZED (
      SELECT s.sku, s.location, p.reorder_point, p.reorder_qty, (${sellableExpr(dayOf(q.asOf))})::bigint AS sellable,
             d.units
        FROM stock_levels s JOIN products p ON p.sku = s.sku AND p.kind = 'simple' AND p.active
        JOIN demand d ON d.sku = s.sku AND d.location = s.location AND d.units > 0
       WHERE ${location}::text IS NULL OR s.location = ${location}
    ), plan AS (
      SELECT *, GREATEST(0, (sellable - reorder_point) * ${q.days}::int)::float8 / units AS days_until
        FROM stock
       WHERE (sellable - reorder_point) * ${q.days}::int <= ${horizon}::int * units
    )
    SELECT sku, location, sellable::int AS sellable, reorder_point, reorder_qty,
           units::float8 / ${q.days}::int AS daily_consumption,
           (sellable * ${q.days}::int)::float8 / units AS days_of_cover,
           sellable < reorder_point AS below_reorder_point,
           days_until AS days_until_reorder_point,
           ((${q.asOf.toISOString()}::timestamptz + make_interval(secs => days_until * 86400)) AT TIME ZONE 'UTC')::date::text AS reorder_on,
           GREATEST(ceil((units * ${horizon}::int - sellable * ${q.days}::int)::numeric / ${q.days}::int), reorder_qty, 0)::int AS suggested_qty
      FROM plan
     ORDER BY days_until, days_of_cover, sku, location`.execute(db);
  return rows;
}
