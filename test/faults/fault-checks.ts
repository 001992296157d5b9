/**
 * What "nothing lost, nothing doubled" means for the fault suite, computed from Postgres alone: every
 * committed change is one row version. A versioned row (stock_levels, lots, products, orders) got exactly
 * the versions 1..version (insert = 1, each UPDATE bumps it by trigger), a ledger row (stock_movements)
 * and a location were inserted once and never changed. So the set of committed changes is
 * {(table, key, v) : 1 ≤ v ≤ current version} ∪ {(stock_movements, id)} ∪ {(locations, code)}, and any
 * observer (the counting projector, the webhook receiver) must have seen each exactly once in effect and
 * nothing outside it. An ambiguous API answer does not matter: only what Postgres committed counts.
 */
import type pg from 'pg';
import type { ChangeEvent, Row } from '../../cdc/envelope.ts';

/** One committed change as an observer saw it: `version` is 1 for rows that never change. */
export interface Observed {
  table: string;
  key: string;
  version: number;
  /** where the observer got it from (a message id, a webhook id): two ids for one change is a duplicate */
  via: string;
}

export interface Committed {
  /** table → key → current version */
  versions: Map<string, Map<string, number>>;
  /** committed changes in total */
  total: number;
}

const VERSIONED: Record<string, { key: (r: Row) => string; sql: string }> = {
  stock_levels: { key: (r) => `${r.sku}@${r.location}`, sql: "SELECT sku || '@' || location AS key, version::int AS version FROM stock_levels" },
  lots: { key: (r) => String(r.id), sql: 'SELECT id::text AS key, version::int AS version FROM lots' },
  products: { key: (r) => String(r.sku), sql: 'SELECT sku AS key, version::int AS version FROM products' },
  orders: { key: (r) => String(r.id), sql: 'SELECT id::text AS key, version::int AS version FROM orders' },
};
const INSERT_ONLY: Record<string, { key: (r: Row) => string; sql: string }> = {
  stock_movements: { key: (r) => String(r.id), sql: 'SELECT id::text AS key, 1 AS version FROM stock_movements' },
  locations: { key: (r) => String(r.code), sql: 'SELECT code AS key, 1 AS version FROM locations' },
};

/** Every change Postgres committed, as the current version of each row. */
export async function committedChanges(pool: pg.Pool): Promise<Committed> {
  const versions = new Map<string, Map<string, number>>();
  let total = 0;
  for (const [table, { sql }] of Object.entries({ ...VERSIONED, ...INSERT_ONLY })) {
    const { rows } = await pool.query<{ key: string; version: number }>(sql);
    versions.set(table, new Map(rows.map((r) => [r.key, r.version])));
    total += rows.reduce((n, r) => n + r.version, 0);
  }
  return { versions, total };
}

/** A change event as an observation (undefined for tables the check does not cover). */
export function observedChange(e: ChangeEvent, via: string): Observed | undefined {
  const row = e.after ?? e.before;
  if (!row) return undefined;
  const versioned = VERSIONED[e.table];
  if (versioned) return { table: e.table, key: versioned.key(row), version: Number(row.version), via };
  const insertOnly = INSERT_ONLY[e.table];
  if (insertOnly) return { table: e.table, key: insertOnly.key(row), version: e.op === 'insert' ? 1 : Number.NaN, via };
  return { table: e.table, key: JSON.stringify(row), version: Number.NaN, via }; // a table we never write: unknown
}

export interface Coverage {
  /** committed changes the observer never saw */
  lost: string[];
  /** changes seen under more than one id (applied twice in effect) */
  duplicates: string[];
  /** seen changes Postgres never committed */
  unknown: string[];
  /** distinct committed changes seen */
  seen: number;
}

/** Compares what an observer saw with what Postgres committed. `tables` limits the check (default: all). */
export function coverage(committed: Committed, observed: Iterable<Observed>, tables?: string[]): Coverage {
  const want = tables ?? [...committed.versions.keys()];
  const vias = new Map<string, Set<string>>();
  const unknown: string[] = [];
  for (const o of observed) {
    const id = `${o.table}/${o.key}#${o.version}`;
    const current = committed.versions.get(o.table)?.get(o.key);
    if (!want.includes(o.table)) {
      if (!committed.versions.has(o.table)) unknown.push(`${id} (table not expected)`);
      continue;
    }
    if (current === undefined || !(o.version >= 1 && o.version <= current)) {
      unknown.push(`${id} (Postgres has ${current === undefined ? 'no such row' : `version ${current}`})`);
      continue;
    }
    if (!vias.has(id)) vias.set(id, new Set());
    vias.get(id)!.add(o.via);
  }
  const lost: string[] = [];
  for (const table of want) {
    for (const [key, version] of committed.versions.get(table) ?? []) {
      for (let v = 1; v <= version; v++) if (!vias.has(`${table}/${key}#${v}`)) lost.push(`${table}/${key}#${v}`);
    }
  }
  const duplicates = [...vias].filter(([, s]) => s.size > 1).map(([id, s]) => `${id} via ${[...s].join(', ')}`);
  return { lost, duplicates, unknown, seen: vias.size };
}

/** Order reservations against the ledger: an open order's ledger rows hold exactly its reservations; a closed one's net to zero. */
export async function orderLedgerViolations(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query(`
    SELECT o.id, o.status, coalesce(m.reserved, 0) AS ledger_reserved, coalesce(r.qty, 0) AS reserved_qty, coalesce(m.on_hand, 0) AS ledger_on_hand
      FROM orders o
      LEFT JOIN (SELECT order_id, sum(delta_reserved)::int AS reserved, sum(delta_on_hand)::int AS on_hand FROM stock_movements GROUP BY order_id) m ON m.order_id = o.id
      LEFT JOIN (SELECT order_id, sum(qty)::int AS qty FROM reservations GROUP BY order_id) r ON r.order_id = o.id
     WHERE (o.status = 'reserved' AND (coalesce(m.reserved, 0) <> coalesce(r.qty, 0) OR coalesce(m.on_hand, 0) <> 0))
        OR (o.status = 'confirmed' AND (coalesce(m.reserved, 0) <> 0 OR -coalesce(m.on_hand, 0) <> coalesce(r.qty, 0)))
        OR (o.status IN ('cancelled', 'payment_failed', 'expired') AND (coalesce(m.reserved, 0) <> 0 OR coalesce(m.on_hand, 0) <> 0))`);
  return rows.map((r) => `order ${r.id} (${r.status}): ledger reserved ${r.ledger_reserved}, on hand ${r.ledger_on_hand}, reservations ${r.reserved_qty}`);
}
