/**
 * Bundles have no stock of their own. A bundle line expands to its components (qty × per-bundle qty),
 * and a bundle's availability is the minimum over its components of floor(available / per-bundle qty).
 */
export interface Component {
  sku: string;
  qty: number;
}

/** Units of a bundle that can be sold given each component's available quantity. */
export function bundleAvailability(components: readonly Component[], availableBySku: ReadonlyMap<string, number>): number {
  if (components.length === 0) return 0;
  let units = Number.POSITIVE_INFINITY;
  for (const c of components) {
    units = Math.min(units, Math.floor(Math.max(0, availableBySku.get(c.sku) ?? 0) / c.qty));
  }
  return units;
}

/** The component quantities one order line needs: itself for a simple product, its components for a bundle. */
export function expandLine(line: { sku: string; qty: number }, components: readonly Component[] | undefined): Component[] {
  if (!components) return [{ sku: line.sku, qty: line.qty }];
  return components.map((c) => ({ sku: c.sku, qty: c.qty * line.qty }));
}
