/**
 * The measuring ends of scripts/bench-e2e.ts, each its own child process (BENCH_SINK=receiver or
 * workbook): the webhook receiver and the workbook reader. Apart from the bench process so their
 * timestamps are not held back by its load generator, and apart from each other so exceljs parsing a
 * workbook never holds up a webhook's answer. Results go to the parent over IPC when it asks ("take":
 * everything since the last take).
 *
 * Receiver: answers 204 to a POST whose Standard Webhooks signature it verified with its own HMAC code
 * (401 otherwise), and records the receipt time (when the body had arrived) with the payload's event_id
 * and timestamp; it counts bad signatures, duplicates (a webhook-id seen before) and ids out of order.
 * Workbook: the directory watch and a 100 ms stat poll notice each save; the file is copied into memory
 * at once (the copy's time is the observation: the content was on disk by then) and parsed afterwards,
 * recording each row's version the first time it is seen.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { watch as watchFs, type FSWatcher } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import ExcelJS from 'exceljs';
import { STOCK } from '../projectors/sheet-sync/layout.ts';

/** One webhook request the receiver accepted. */
export interface Receipt { at: number; eventId: string; commit: number }
/** A version of a sheet row seen at a time. */
export interface Seen { sku: string; version: number; at: number }
export interface SinkStats {
  requests: number; accepted: number; badSignatures: number; duplicates: number; outOfOrder: number;
  xlsxReads: number; xlsxSaves: number; xlsxErrors: number; xlsxParseMsMax: number;
}
export type ToSinks = { type: 'secret'; secret: string } | { type: 'take'; seq: number };
export type FromSinks = { type: 'ready'; port: number } | { type: 'taken'; seq: number; receipts: Receipt[]; xlsx: Seen[]; stats: SinkStats };

async function main(): Promise<void> {
  const role = process.env.BENCH_SINK;
  const xlsxPath = process.env.BENCH_XLSX_PATH ?? '';
  const tab = process.env.BENCH_XLSX_TAB ?? '';
  if (!process.send || !(role === 'receiver' || (role === 'workbook' && xlsxPath && tab))) {
    throw new Error('bench-e2e-sinks runs as a child of scripts/bench-e2e.ts (IPC; BENCH_SINK=receiver, or =workbook with BENCH_XLSX_PATH and BENCH_XLSX_TAB)');
  }
  const stats: SinkStats = { requests: 0, accepted: 0, badSignatures: 0, duplicates: 0, outOfOrder: 0, xlsxReads: 0, xlsxSaves: 0, xlsxErrors: 0, xlsxParseMsMax: 0 };
  let key: Buffer | undefined;
  let receipts: Receipt[] = [];
  const seenIds = new Set<string>();
  let highestId = 0n;

  /** Standard Webhooks, checked here with our own HMAC code: v1,<base64 HMAC-SHA256(key, id.ts.body)>. */
  const signed = (id: string, timestamp: string, body: string, header: string) => {
    if (!key) return false;
    const want = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
    return header.split(' ').some((s) => {
      const [version, value] = s.split(',');
      const got = Buffer.from(value ?? '', 'base64');
      return version === 'v1' && got.length === want.length && timingSafeEqual(got, want);
    });
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      stats.requests += 1;
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const timestamp = String(req.headers['webhook-timestamp'] ?? '');
      if (!/^\d+$/.test(id) || !signed(id, timestamp, body, String(req.headers['webhook-signature'] ?? ''))) {
        stats.badSignatures += 1;
        res.writeHead(401).end();
        return;
      }
      res.writeHead(204).end();
      if (seenIds.has(id)) {
        stats.duplicates += 1;
        return;
      }
      seenIds.add(id);
      const n = BigInt(id);
      if (n < highestId) stats.outOfOrder += 1;
      else highestId = n;
      stats.accepted += 1;
      const payload = JSON.parse(body) as { event_id: string; timestamp: string };
      receipts.push({ at, eventId: payload.event_id, commit: Date.parse(payload.timestamp) });
    });
  });
  server.keepAliveTimeout = 60_000;
  if (role === 'receiver') await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));

  // the workbook: copied into memory after every save the directory watch or the stat poll notices (the
  // copy's time is the observation), parsed afterwards, so a slow parse never delays the next observation
  let xlsx: Seen[] = [];
  const lastVersion = new Map<string, number>();
  const copies: { buffer: Buffer; at: number }[] = [];
  let lastFile = '';
  let reading = false;
  let again = false;
  let parsing = false;
  async function readWorkbook() {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        const st = await stat(xlsxPath).catch(() => undefined);
        const signature = st ? `${st.ino}:${st.mtimeMs}:${st.size}` : '';
        if (!st || signature === lastFile) continue;
        const buffer = await readFile(xlsxPath).catch(() => undefined);
        const at = Date.now(); // what we read was in the file by now
        if (!buffer) continue;
        lastFile = signature;
        stats.xlsxReads += 1;
        copies.push({ buffer, at });
        void parseCopies();
      } while (again);
    } finally {
      reading = false;
    }
  }
  async function parseCopies() {
    if (parsing) return;
    parsing = true;
    try {
      for (let copy = copies.shift(); copy; copy = copies.shift()) {
        const started = performance.now();
        const workbook = new ExcelJS.Workbook();
        try {
          await workbook.xlsx.load(copy.buffer as unknown as ArrayBuffer);
        } catch {
          stats.xlsxErrors += 1; // (a save caught half-way cannot happen: the mirror renames a complete file)
          continue;
        }
        stats.xlsxSaves += 1;
        stats.xlsxParseMsMax = Math.max(stats.xlsxParseMsMax, performance.now() - started);
        workbook.getWorksheet(tab)?.eachRow((row, n) => {
          if (n === 1) return;
          const sku = String(row.getCell(STOCK.sku + 1).value ?? '');
          const version = Number(row.getCell(STOCK.version + 1).value);
          if (!sku || !Number.isFinite(version) || version <= (lastVersion.get(sku) ?? 0)) return;
          lastVersion.set(sku, version);
          xlsx.push({ sku, version, at: copy.at });
        });
      }
    } finally {
      parsing = false;
    }
  }
  let watcher: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  if (role === 'workbook') {
    await mkdir(path.dirname(xlsxPath), { recursive: true });
    watcher = watchFs(path.dirname(xlsxPath), () => void readWorkbook());
    poll = setInterval(() => void readWorkbook(), 100);
  }

  const stop = () => {
    clearInterval(poll);
    watcher?.close();
    server.closeAllConnections();
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop); // the bench is gone
  process.on('message', (m: ToSinks) => {
    if (m.type === 'secret') key = Buffer.from(m.secret.replace(/^whsec_/, ''), 'base64');
    if (m.type === 'take') {
      const reply: FromSinks = { type: 'taken', seq: m.seq, receipts, xlsx, stats: { ...stats, xlsxParseMsMax: Math.round(stats.xlsxParseMsMax) } };
      receipts = [];
      xlsx = [];
      process.send!(reply);
    }
  });
  process.send!({ type: 'ready', port: role === 'receiver' ? (server.address() as AddressInfo).port : 0 } satisfies FromSinks);
}

await main();
