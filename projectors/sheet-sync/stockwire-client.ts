/**
 * The two API calls a sheet edit can become, made as the sheet-sync role. The engine never writes to
 * Postgres itself: an edit goes through the same validation, permissions, ledger and audit as any
 * other adjustment. Answers are returned, not thrown, so the engine can tell "refused" (revert the
 * cell) from "could not ask" (try again on the next read).
 */
import { createHash } from 'node:crypto';

export type ApiAnswer<T> =
  | { kind: 'accepted'; body: T }
  | { kind: 'refused'; status: number; code: string; message: string }
  | { kind: 'unavailable'; message: string };

export interface StockChangeAnswer {
  stock: { sku: string; location: string; on_hand: number; reserved: number; version: number; updated_at: string };
}

export interface ProductAnswer { sku: string; name: string; category: string; kind: string; lot_tracked: boolean; reorder_point: number; version: number }

export interface StockwireClient {
  countStock(input: { sku: string; location: string; counted: number; expectedVersion: number; note: string }): Promise<ApiAnswer<StockChangeAnswer>>;
  setReorderPoint(input: { sku: string; reorderPoint: number; expectedVersion: number | undefined }): Promise<ApiAnswer<ProductAnswer>>;
}

export function createStockwireClient(props: { baseUrl: string; token: string; timeoutMs?: number; source: string }): StockwireClient {
  const base = props.baseUrl.replace(/\/$/, '');

  async function send<T>(method: string, path: string, body: unknown): Promise<ApiAnswer<T>> {
    // the same edit read twice (a crash between the call and the write-back) is answered from the
    // idempotency store instead of being applied again
    const key = createHash('sha256').update(`${props.source} ${method} ${path} ${JSON.stringify(body)}`).digest('hex').slice(0, 40);
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${props.token}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(props.timeoutMs ?? 10_000),
      });
    } catch (err) {
      return { kind: 'unavailable', message: (err as Error).message };
    }
    const text = await res.text();
    let parsed: any;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.ok) return { kind: 'accepted', body: parsed as T };
    // 5xx, 429 and auth failures are ours or transient: the edit stays in the sheet and is tried again
    if (res.status >= 500 || res.status === 429 || res.status === 401 || res.status === 403) {
      return { kind: 'unavailable', message: `API answered ${res.status}: ${parsed?.error?.message ?? text.slice(0, 200)}` };
    }
    return { kind: 'refused', status: res.status, code: parsed?.error?.code ?? 'refused', message: parsed?.error?.message ?? `API answered ${res.status}` };
  }

  return {
    countStock: (input) =>
      send('POST', '/v1/adjustments', {
        sku: input.sku, location: input.location, counted: input.counted, reason: 'count', note: input.note, expected_version: input.expectedVersion,
      }),
    setReorderPoint: (input) =>
      send('PUT', `/v1/products/${encodeURIComponent(input.sku)}/reorder-point`, {
        reorder_point: input.reorderPoint, ...(input.expectedVersion !== undefined ? { expected_version: input.expectedVersion } : {}),
      }),
  };
}
