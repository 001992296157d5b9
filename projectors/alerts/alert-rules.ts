/**
 * The alert decisions, pure: when a (sku, location) turns low or recovers, when a lot is expiring or
 * expired, and what an alert says. Low stock has hysteresis: it fires when available drops BELOW the
 * reorder point and clears only once available is back at reorder point + margin, so stock wobbling
 * around the threshold raises one alert per real crossing. Each lot alerts at most once per kind.
 */

/** What the alert is about, as every channel renders it. */
export type Notice =
  | {
    kind: 'low-stock';
    action: 'trigger' | 'resolve';
    /** stable per (sku, location): PagerDuty's dedup_key, the same for trigger and resolve */
    dedupKey: string;
    sku: string;
    name: string;
    location: string;
    available: number;
    reorderPoint: number;
    suggestion: number;
    at: string;
  }
  | {
    kind: 'expiring' | 'expired';
    action: 'trigger';
    dedupKey: string;
    sku: string;
    name: string;
    location: string;
    lotId: string;
    lotCode: string;
    onHand: number;
    expiresOn: string;
    daysLeft: number;
    at: string;
  };

export type LowDecision = 'trigger' | 'resolve' | 'none';

/** Recovery margin above the reorder point: the configured one, else max(1, 10 % of the reorder point). */
export function recoveryMargin(reorderPoint: number, configured?: number): number {
  return configured ?? Math.max(1, Math.ceil(reorderPoint * 0.1));
}

/** Low-stock hysteresis: trigger on dropping below the reorder point, resolve at reorder point + margin. */
export function lowStockDecision(p: { available: number; reorderPoint: number; margin: number; low: boolean }): LowDecision {
  if (!p.low) return p.reorderPoint > 0 && p.available < p.reorderPoint ? 'trigger' : 'none';
  // a reorder point lowered to 0 means "do not watch": the open alert is closed
  if (p.reorderPoint <= 0 || p.available >= p.reorderPoint + p.margin) return 'resolve';
  return 'none';
}

/** How much to reorder: the product's reorder_qty, else enough to reach twice the reorder point. */
export function reorderSuggestion(reorderQty: number, reorderPoint: number, available: number): number {
  return reorderQty > 0 ? reorderQty : Math.max(0, reorderPoint * 2 - available);
}

const DAY_MS = 86_400_000;

/** Whole days from `today` to `date` (both YYYY-MM-DD). */
export function daysBetween(today: string, date: string): number {
  return Math.round((Date.parse(`${date}T00:00:00Z`) - Date.parse(`${today}T00:00:00Z`)) / DAY_MS);
}

/** Today's date (UTC) as YYYY-MM-DD. */
export function isoDay(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/**
 * Which expiry alerts a lot is due: "expired" once its date has come (the API's rule: expires_on <= today)
 * while stock is on hand, "expiring" within `windowDays` before that. A lot already past its date when
 * first seen gets only the "expired" alert.
 */
export function expiryDecisions(p: { expiresOn: string; onHand: number; today: string; windowDays: number; alerted: ReadonlySet<string> }): ('expiring' | 'expired')[] {
  if (p.onHand <= 0) return [];
  const days = daysBetween(p.today, p.expiresOn);
  if (days <= 0) return p.alerted.has('expired') ? [] : ['expired'];
  if (days <= p.windowDays && !p.alerted.has('expiring') && !p.alerted.has('expired')) return ['expiring'];
  return [];
}

/** PagerDuty dedup key of a (sku, location)'s low-stock alert. */
export function lowStockKey(sku: string, location: string): string {
  return `stockwire:low:${sku}:${location}`;
}

/** PagerDuty dedup key of a lot's expiry alert. */
export function lotKey(kind: 'expiring' | 'expired', lotId: string): string {
  return `stockwire:${kind}:${lotId}`;
}

/** One line saying what happened, for summaries, subjects and logs. */
export function summaryOf(n: Notice): string {
  switch (n.kind) {
    case 'low-stock':
      return n.action === 'trigger'
        ? `Low stock: ${n.sku} (${n.name}) at ${n.location} — ${n.available} available, reorder point ${n.reorderPoint}`
        : `Stock recovered: ${n.sku} (${n.name}) at ${n.location} — ${n.available} available, reorder point ${n.reorderPoint}`;
    case 'expiring':
      return `Lot expiring: ${n.sku} lot ${n.lotCode} at ${n.location} expires ${n.expiresOn} (${n.daysLeft} days), ${n.onHand} on hand`;
    case 'expired':
      return `Expired stock on hand: ${n.sku} lot ${n.lotCode} at ${n.location} expired ${n.expiresOn}, ${n.onHand} on hand`;
  }
}

/** The notice's facts as label/value pairs (Slack fields, e-mail body, PagerDuty custom_details). */
export function detailsOf(n: Notice): [string, string | number][] {
  const common: [string, string | number][] = [['sku', n.sku], ['name', n.name], ['location', n.location]];
  if (n.kind === 'low-stock') {
    const rows: [string, string | number][] = [...common, ['available', n.available], ['reorder point', n.reorderPoint]];
    if (n.action === 'trigger') rows.push(['suggested reorder', n.suggestion]);
    return rows;
  }
  return [...common, ['lot', n.lotCode], ['expires on', n.expiresOn], ['on hand', n.onHand]];
}
