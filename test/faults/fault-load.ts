/**
 * The fault suite's mixed load: a few workers calling the API over HTTP at a fixed overall rate, placing
 * orders (1–3 lines), confirming or cancelling most of them later, and posting adjustments and receipts.
 * Every answer is counted by operation and status; a 5xx is kept with its body (a stack trace in it, or
 * a 500 where the caller could only wait, is a finding). Postgres is the truth for the checks, so a
 * request whose outcome is unknown (a timeout, a reset) needs no bookkeeping here.
 */

export type LoadOp = 'order' | 'confirm' | 'cancel' | 'adjust' | 'receipt';

export interface LoadSku {
  sku: string;
  /** lot-tracked products need a lot code and expiry on receipts */
  lot?: { code: string; expiresOn: string };
}

export interface LoadProps {
  baseUrl: string;
  /** bearer token allowed orders:write, stock:adjust and stock:receive */
  token: string;
  skus: LoadSku[];
  locations: string[];
  /** requests per second across all workers */
  rate: number;
  workers: number;
  durationMs: number;
  /** deterministic choice of operations (a seed is printed in the report) */
  random: () => number;
  requestTimeoutMs?: number;
}

export interface ServerError {
  op: LoadOp;
  status: number;
  at: number;
  body: string;
}

export interface LoadResult {
  requests: number;
  /** status (or "timeout" / "network") → count */
  statuses: Record<string, number>;
  byOp: Record<LoadOp, Record<string, number>>;
  serverErrors: ServerError[];
  /** orders the API answered 201 for */
  ordersPlaced: number;
}

/** A small seedable PRNG (mulberry32), so a failing run's operation sequence can be repeated. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Runs the load for `durationMs`; resolves with the counts once every worker finished its last request. */
export async function runFaultLoad(props: LoadProps): Promise<LoadResult> {
  const { random } = props;
  const result: LoadResult = {
    requests: 0, statuses: {}, serverErrors: [], ordersPlaced: 0,
    byOp: { order: {}, confirm: {}, cancel: {}, adjust: {}, receipt: {} },
  };
  const open: { id: string; location: string }[] = []; // placed orders not yet settled by this load
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  const started = Date.now();
  const intervalMs = 1000 / props.rate;
  let slot = 0;

  async function call(op: LoadOp, path: string, body?: unknown): Promise<{ status: number; json?: any }> {
    let key: string;
    let status = 0;
    let json: any;
    try {
      const res = await fetch(`${props.baseUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${props.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(props.requestTimeoutMs ?? 10_000),
      });
      status = res.status;
      key = String(status);
      const text = await res.text();
      if (status >= 500) result.serverErrors.push({ op, status, at: Date.now(), body: text.slice(0, 2000) });
      try { json = text ? JSON.parse(text) : undefined; } catch { /* not JSON: kept in serverErrors when 5xx */ }
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      key = (err as Error).name === 'TimeoutError' ? 'timeout' : `network${cause ? `:${cause}` : ''}`;
    }
    result.requests += 1;
    result.statuses[key] = (result.statuses[key] ?? 0) + 1;
    result.byOp[op][key] = (result.byOp[op][key] ?? 0) + 1;
    return { status, json };
  }

  async function step() {
    const r = random();
    if (r < 0.45 || (r < 0.75 && open.length === 0)) {
      const location = pick(props.locations);
      const count = 1 + Math.floor(random() * 3);
      const skus = [...new Set(Array.from({ length: count }, () => pick(props.skus).sku))];
      const lines = skus.map((sku) => ({ sku, qty: 1 + Math.floor(random() * 3) }));
      const res = await call('order', '/v1/orders', { location, lines });
      if (res.status === 201 && res.json?.id) {
        result.ordersPlaced += 1;
        // about one order in six is left reserved (it would expire later); the rest are settled below
        if (random() < 0.85) open.push({ id: String(res.json.id), location });
      }
    } else if (r < 0.75) {
      const order = open.splice(Math.floor(random() * open.length), 1)[0]!;
      const op = random() < 0.6 ? 'confirm' : 'cancel';
      await call(op, `/v1/orders/${order.id}/${op}`);
    } else if (r < 0.9) {
      const item = pick(props.skus);
      const up = random() < 0.5;
      const delta = (1 + Math.floor(random() * 3)) * (up ? 1 : -1);
      await call('adjust', '/v1/adjustments', {
        sku: item.sku, location: pick(props.locations), delta, reason: up ? 'found' : 'damaged',
        ...(item.lot ? { lot_code: item.lot.code } : {}),
      });
    } else {
      const item = pick(props.skus);
      await call('receipt', '/v1/receipts', {
        sku: item.sku, location: pick(props.locations), qty: 5 + Math.floor(random() * 10),
        ...(item.lot ? { lot_code: item.lot.code, expires_on: item.lot.expiresOn } : {}),
      });
    }
  }

  async function worker() {
    for (;;) {
      const due = started + slot++ * intervalMs;
      if (due - started >= props.durationMs) return;
      const wait = due - Date.now();
      if (wait < -1000) continue; // the API stalled (a restart): skip missed slots instead of bursting afterwards
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await step();
    }
  }
  await Promise.all(Array.from({ length: props.workers }, worker));
  return result;
}
