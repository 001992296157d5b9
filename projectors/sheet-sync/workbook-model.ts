/**
 * The sync engine's picture of the database: locations, products, stock rows, lots and bundle
 * components, loaded once at start and then kept current from change events (by version, so a
 * redelivered or older event changes nothing). It answers two questions: which sheet rows a change
 * touches, and what a sheet row should show.
 */
import type { ChangeEvent, Row } from '../../cdc/envelope.ts';
import { BUNDLES_TAB, LOTS_TAB, sheetTimestamp } from './layout.ts';
import type { CellValue } from './sheet-target.ts';

export interface ProductState { sku: string; name: string; category: string; kind: string; lot_tracked: boolean; reorder_point: number; version: number }
export interface StockState { sku: string; location: string; on_hand: number; reserved: number; version: number; updated_at: string }
export interface LotState { id: string; sku: string; location: string; lot_code: string; expires_on: string; on_hand: number; reserved: number; version: number }
export interface ComponentState { bundle_sku: string; component_sku: string; qty: number }

export interface ModelSnapshot {
  locations: string[];
  products: ProductState[];
  stock: StockState[];
  lots: LotState[];
  components: ComponentState[];
}

/** One sheet row: its tab and its key within the tab (sku on location tabs). */
export interface RowRef { tab: string; key: string }

/** Rows a batch of changes touched; `forced` rows are rewritten even when they look unchanged (a resync). */
export interface Touched { rows: RowRef[]; forced: boolean; newLocations: string[] }

const stockKey = (sku: string, location: string) => `${sku}|${location}`;
export const lotRowKey = (sku: string, location: string, lotCode: string) => `${sku}|${location}|${lotCode}`;
export const bundleRowKey = (bundle: string, location: string) => `${bundle}|${location}`;

const num = (v: unknown) => Number(v);
const str = (v: unknown) => (v instanceof Date ? v.toISOString() : String(v));

function productOf(r: Row): ProductState {
  return { sku: str(r.sku), name: str(r.name), category: str(r.category), kind: str(r.kind), lot_tracked: Boolean(r.lot_tracked), reorder_point: num(r.reorder_point), version: num(r.version) };
}
function stockOf(r: Row): StockState {
  return { sku: str(r.sku), location: str(r.location), on_hand: num(r.on_hand), reserved: num(r.reserved), version: num(r.version), updated_at: str(r.updated_at) };
}
function lotOf(r: Row): LotState {
  return {
    id: str(r.id), sku: str(r.sku), location: str(r.location), lot_code: str(r.lot_code), expires_on: str(r.expires_on).slice(0, 10),
    on_hand: num(r.on_hand), reserved: num(r.reserved), version: num(r.version),
  };
}

export class WorkbookModel {
  readonly locations = new Set<string>();
  private readonly products = new Map<string, ProductState>();
  private readonly stock = new Map<string, StockState>();
  /** lots by stock row (sku|location), then by lot code */
  private readonly lots = new Map<string, Map<string, LotState>>();
  /** bundle sku → component sku → qty */
  private readonly components = new Map<string, Map<string, number>>();

  constructor(snapshot: ModelSnapshot) {
    for (const code of snapshot.locations) this.locations.add(code);
    for (const p of snapshot.products) this.products.set(p.sku, p);
    for (const s of snapshot.stock) this.stock.set(stockKey(s.sku, s.location), s);
    for (const l of snapshot.lots) this.lotsOf(l.sku, l.location).set(l.lot_code, l);
    for (const c of snapshot.components) this.setComponent(c.bundle_sku, c.component_sku, c.qty);
  }

  product(sku: string): ProductState | undefined {
    return this.products.get(sku);
  }

  stockRow(sku: string, location: string): StockState | undefined {
    return this.stock.get(stockKey(sku, location));
  }

  /** Brings the model up to date with a batch of changes and says which sheet rows they touched. */
  apply(events: ChangeEvent[]): Touched {
    const rows: RowRef[] = [];
    const newLocations: string[] = [];
    let forced = false;
    for (const event of events) {
      if (event.op === 'snapshot') forced = true;
      const row = event.after ?? event.before;
      if (!row) continue;
      switch (event.table) {
        case 'locations':
          if (event.op !== 'delete' && !this.locations.has(str(row.code))) {
            this.locations.add(str(row.code));
            newLocations.push(str(row.code));
            for (const bundle of this.components.keys()) rows.push({ tab: BUNDLES_TAB, key: bundleRowKey(bundle, str(row.code)) });
          }
          break;
        case 'products':
          rows.push(...this.applyProduct(event, productOf(row)));
          break;
        case 'stock_levels':
          rows.push(...this.applyStock(event, stockOf(row)));
          break;
        case 'lots':
          rows.push(...this.applyLot(event, lotOf(row)));
          break;
        case 'bundle_components': {
          const bundle = str(row.bundle_sku);
          if (event.op === 'delete') this.components.get(bundle)?.delete(str(row.component_sku));
          else this.setComponent(bundle, str(row.component_sku), num(row.qty));
          rows.push(...this.bundleRows(bundle));
          break;
        }
      }
    }
    return { rows, forced, newLocations };
  }

  /** Every row the workbook should have (for a full reconcile). */
  allRows(): RowRef[] {
    const rows: RowRef[] = [];
    for (const s of this.stock.values()) if (this.isStocked(s.sku)) rows.push({ tab: s.location, key: s.sku });
    for (const lots of this.lots.values()) for (const l of lots.values()) rows.push({ tab: LOTS_TAB, key: lotRowKey(l.sku, l.location, l.lot_code) });
    for (const bundle of this.components.keys()) rows.push(...this.bundleRows(bundle));
    return rows;
  }

  /** What a row shows; undefined when the row no longer exists (its cells are cleared). */
  render(ref: RowRef): CellValue[] | undefined {
    if (ref.tab === LOTS_TAB) return this.renderLot(ref.key);
    if (ref.tab === BUNDLES_TAB) return this.renderBundle(ref.key);
    return this.renderStock(ref.key, ref.tab);
  }

  /** The key of a row as the sheet shows it (the inverse of render), or undefined for a blank row. */
  static keyOfGridRow(tab: string, cells: CellValue[]): string | undefined {
    const text = (i: number) => (cells[i] === null || cells[i] === undefined || cells[i] === '' ? undefined : String(cells[i]));
    if (tab === LOTS_TAB) {
      const [lot, sku, location] = [text(0), text(1), text(2)];
      return lot && sku && location ? lotRowKey(sku, location, lot) : undefined;
    }
    if (tab === BUNDLES_TAB) {
      const [bundle, location] = [text(0), text(2)];
      return bundle && location ? bundleRowKey(bundle, location) : undefined;
    }
    return text(0);
  }

  private isStocked(sku: string): boolean {
    return this.products.get(sku)?.kind !== 'bundle';
  }

  private applyProduct(event: ChangeEvent, next: ProductState): RowRef[] {
    const current = this.products.get(next.sku);
    if (event.op !== 'snapshot' && current && current.version >= next.version) return [];
    this.products.set(next.sku, next);
    const rows: RowRef[] = [];
    for (const location of this.locations) if (this.stock.has(stockKey(next.sku, location))) rows.push({ tab: location, key: next.sku });
    if (next.kind === 'bundle') rows.push(...this.bundleRows(next.sku));
    return rows;
  }

  private applyStock(event: ChangeEvent, next: StockState): RowRef[] {
    const key = stockKey(next.sku, next.location);
    const current = this.stock.get(key);
    if (event.op === 'delete') this.stock.delete(key);
    else if (event.op !== 'snapshot' && current && current.version >= next.version) return [];
    else this.stock.set(key, next);
    const rows: RowRef[] = [{ tab: next.location, key: next.sku }];
    for (const [bundle, parts] of this.components) if (parts.has(next.sku)) rows.push({ tab: BUNDLES_TAB, key: bundleRowKey(bundle, next.location) });
    return rows;
  }

  private applyLot(event: ChangeEvent, next: LotState): RowRef[] {
    const lots = this.lotsOf(next.sku, next.location);
    const current = lots.get(next.lot_code);
    if (event.op === 'delete') lots.delete(next.lot_code);
    else if (event.op !== 'snapshot' && current && current.version >= next.version) return [];
    else lots.set(next.lot_code, next);
    return [{ tab: LOTS_TAB, key: lotRowKey(next.sku, next.location, next.lot_code) }, { tab: next.location, key: next.sku }];
  }

  /** A model change can also come back in an API answer before its event arrives (an accepted sheet edit). */
  applyStockAnswer(next: StockState): RowRef[] {
    return this.applyStock({ op: 'update' } as ChangeEvent, next);
  }

  applyProductAnswer(next: ProductState): RowRef[] {
    return this.applyProduct({ op: 'update' } as ChangeEvent, next);
  }

  private lotsOf(sku: string, location: string): Map<string, LotState> {
    const key = stockKey(sku, location);
    let lots = this.lots.get(key);
    if (!lots) this.lots.set(key, (lots = new Map()));
    return lots;
  }

  private setComponent(bundle: string, component: string, qty: number) {
    let parts = this.components.get(bundle);
    if (!parts) this.components.set(bundle, (parts = new Map()));
    parts.set(component, qty);
  }

  private bundleRows(bundle: string): RowRef[] {
    return [...this.locations].map((location) => ({ tab: BUNDLES_TAB, key: bundleRowKey(bundle, location) }));
  }

  private nearestExpiry(sku: string, location: string): string | null {
    let nearest: string | null = null;
    for (const l of this.lots.get(stockKey(sku, location))?.values() ?? []) {
      if (l.on_hand > 0 && (nearest === null || l.expires_on < nearest)) nearest = l.expires_on;
    }
    return nearest;
  }

  private renderStock(sku: string, location: string): CellValue[] | undefined {
    const s = this.stock.get(stockKey(sku, location));
    if (!s || !this.isStocked(sku)) return undefined;
    const p = this.products.get(sku);
    const reorderPoint = p?.reorder_point ?? 0;
    return [
      sku, p?.name ?? '', p?.category ?? '', s.on_hand, s.reserved, s.on_hand - s.reserved, reorderPoint,
      this.nearestExpiry(sku, location) ?? '', sheetTimestamp(s.updated_at), s.version, s.on_hand, reorderPoint,
    ];
  }

  private renderLot(key: string): CellValue[] | undefined {
    const [sku, location, lotCode] = key.split('|') as [string, string, string];
    const l = this.lots.get(stockKey(sku, location))?.get(lotCode);
    return l && [l.lot_code, l.sku, l.location, l.expires_on, l.on_hand, l.reserved, l.version];
  }

  private renderBundle(key: string): CellValue[] | undefined {
    const [bundle, location] = key.split('|') as [string, string];
    const parts = this.components.get(bundle);
    const product = this.products.get(bundle);
    if (!parts || parts.size === 0 || !product || !this.locations.has(location)) return undefined;
    let available = Number.POSITIVE_INFINITY;
    const described: string[] = [];
    for (const [component, qty] of [...parts].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const s = this.stock.get(stockKey(component, location));
      available = Math.min(available, s ? Math.floor(Math.max(0, s.on_hand - s.reserved) / qty) : 0);
      described.push(`${component} ×${qty}`);
    }
    return [bundle, product.name, location, described.join(' + '), available];
  }
}
