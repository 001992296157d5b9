/**
 * The fault suite's report: one row per injected fault with its recovery time, the change counts (from
 * Postgres and from the stream), what was lost or doubled, and the load's HTTP statuses — printed as a
 * table and written to test-artifacts/fault-report.json (git-ignored).
 *
 * Recovery time of a fault = from the end of the outage it caused (a SIGKILLed process: the kill, as it
 * is restarted at once; a restart: the server accepting connections again; a stretch of provider errors
 * or a cut link: the moment it ends) until a probe change, committed through the API right then (as
 * soon as Postgres accepts it), is visible in the component the fault affected: the counting projector
 * for cdc, NATS, proxy and Postgres faults, Redis for the redis-cache projector, the fake's grid for the
 * sheet mirrors and their providers, the Slack fake for the alerts channel. The schedule does not wait
 * for recoveries, so a recovery can include a later fault; `overlapped` says when. Times are measured on
 * a shared 2-core machine and never asserted.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface FaultRecord {
  kind: string;
  /** injection time, seconds after the load started */
  at_s: number;
  /** injection → end of the outage */
  outage_ms: number;
  /** end of the outage → the probe committed (Postgres accepting writes through the API again) */
  probe_commit_ms: number | null;
  /** end of the outage → the probe visible where `observed_in` says; null: never seen before the deadline */
  recovery_ms: number | null;
  observed_in: string;
  /** later faults injected before this one had recovered */
  overlapped: string[];
  note?: string;
}

export interface FaultReport {
  started_at: string;
  wall_time_s: number;
  load_seconds: number;
  seed: number;
  faults: FaultRecord[];
  changes_committed: { postgres: number; stream: number };
  changes_lost: Record<string, number>;
  duplicates_applied: Record<string, number>;
  stream: { messages: number; position_markers: number; duplicate_msg_ids: number };
  http: { requests: number; statuses: Record<string, number>; by_op: Record<string, Record<string, number>>; server_errors: { op: string; status: number; body: string }[] };
  dead_letters: { dlq_stream: number; webhook_dead: number; projector_status: Record<string, number> };
  webhooks: { deliveries: number; distinct_ids: number; redelivered: number; out_of_row_order: number };
  /** guarantees found broken in code owned elsewhere: measured, reported, not failing unless FAULT_SUITE_STRICT=1 */
  known_bugs: Record<string, string>;
  slack: { messages: number; held_calls: number };
  unexpected_exits: { name: string; code: number | null; signal: string | null; at_s: number }[];
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

/** The report as a fixed-width text table with the totals below it. */
export function formatReport(r: FaultReport): string {
  const cols: [string, number][] = [['fault', 26], ['at s', 7], ['outage ms', 10], ['probe ms', 9], ['recovery ms', 12], ['seen in', 22], ['overlapped by', 28]];
  const line = (cells: string[]) => cells.map((c, i) => pad(c, cols[i]![1])).join(' ').trimEnd();
  const rows = r.faults.map((f) => line([
    f.kind, f.at_s.toFixed(1), String(f.outage_ms), f.probe_commit_ms === null ? '—' : String(f.probe_commit_ms),
    f.recovery_ms === null ? 'NOT RECOVERED' : String(f.recovery_ms), f.observed_in, f.overlapped.join(', ') || '—',
  ]));
  const total = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  return [
    `fault suite: ${r.load_seconds} s of load, seed ${r.seed}, wall time ${r.wall_time_s.toFixed(1)} s`,
    line(cols.map(([c]) => c)),
    ...rows,
    ...r.faults.filter((f) => f.note).map((f) => `  ${f.kind}: ${f.note}`),
    `faults injected: ${r.faults.length}`,
    `changes committed: ${r.changes_committed.postgres} (Postgres), ${r.changes_committed.stream} (stream; ${r.stream.position_markers} position markers besides)`,
    `changes lost: ${total(r.changes_lost)} ${JSON.stringify(r.changes_lost)}`,
    `duplicates applied: ${total(r.duplicates_applied)} ${JSON.stringify(r.duplicates_applied)}`,
    `duplicate Nats-Msg-Id in the stream: ${r.stream.duplicate_msg_ids}`,
    `dead letters: DLQ stream ${r.dead_letters.dlq_stream}, dead webhook deliveries ${r.dead_letters.webhook_dead}, projector status ${JSON.stringify(r.dead_letters.projector_status)}`,
    `webhooks: ${r.webhooks.distinct_ids} distinct deliveries (${r.webhooks.redelivered} re-sent, deduplicated by webhook-id; ${r.webhooks.out_of_row_order} events behind a newer version of their row); slack: ${r.slack.messages} messages, ${r.slack.held_calls} calls held to time out`,
    ...Object.entries(r.known_bugs).map(([k, v]) => `known bug (not failing the run unless FAULT_SUITE_STRICT=1): ${k}: ${v}`),
    `HTTP (${r.http.requests} requests): ${JSON.stringify(r.http.statuses)}`,
    ...Object.entries(r.http.by_op).map(([op, s]) => `  ${pad(op, 8)} ${JSON.stringify(s)}`),
    `server errors (5xx): ${r.http.server_errors.length}${r.http.server_errors.length ? ` — first: ${r.http.server_errors[0]!.status} ${r.http.server_errors[0]!.body.slice(0, 200)}` : ''}`,
    `unexpected process exits: ${r.unexpected_exits.length ? JSON.stringify(r.unexpected_exits) : 'none'}`,
  ].join('\n');
}

/** Writes the report as JSON under test-artifacts/ of the work tree; returns the file's path. */
export async function writeReport(r: FaultReport): Promise<string> {
  const dir = path.resolve(import.meta.dirname, '..', '..', 'test-artifacts');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'fault-report.json');
  await writeFile(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}
