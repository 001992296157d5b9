/**
 * The SQL the API issues for one reservation, captured from Postgres' own statement log — not re-typed —
 * and turned into pgbench scripts, so pgbench can run exactly that SQL as a baseline.
 *
 * Capture: the server's stderr is recorded (each line prefixed with its pid, see CAPTURE_SETTINGS); while
 * the API runs with one pooled connection and one client, `log_statement = 'all'` is switched on, so the
 * log holds every statement of consecutive order requests in order, each with its bind parameters
 * ("parameters: $1 = '…', …"). A request is the run of statements from the location check (the first
 * statement POST /v1/orders issues) to the one inserting the order; background work of the API (audit
 * sealing, order expiry) is not part of a request and is left out.
 *
 * Replay (pgbenchWorkload): the captured requests of the common shape become one pgbench script run with
 * -M prepared — the statements in order with every `$n` a pgbench variable, i.e. a bound parameter of a
 * prepared statement, as the API's named prepared statements are (db/sql-runner.ts) — and a table of
 * the captured parameter values, one row per request, from which each transaction picks one at random.
 * node-postgres sends every parameter as untyped text and so does pgbench, so the server types them alike.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/**
 * Postgres settings the cluster starts with so a capture can be switched on at run time: every log line
 * starts with `@@pid|database|`, so records can be told apart in the server's stderr.
 */
export const CAPTURE_SETTINGS = { log_line_prefix: '@@%p|%d|', log_parameter_max_length: '-1' };

export interface CapturedStatement {
  sql: string;
  params: (string | null)[];
}

const FIRST_STATEMENT = /SELECT EXISTS \(SELECT 1 FROM locations WHERE code = \$\d+\)/;
const LAST_STATEMENT = /INSERT INTO orders \(/;

/** Switches statement logging on (`all`) or off for new commands of every session. */
export async function setStatementLogging(adminUrl: string, on: boolean): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`ALTER SYSTEM SET log_statement = '${on ? 'all' : 'none'}'`);
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
}

/** Collects the server's output (startEmbeddedCluster's onOutput) while recording. */
export function createOutputRecorder() {
  let chunks: string[] | undefined;
  return {
    onOutput: (chunk: string) => void chunks?.push(chunk),
    start: () => void (chunks = []),
    stop: (): string => {
      const text = (chunks ?? []).join('');
      chunks = undefined;
      return text;
    },
  };
}

/** Parses `$1 = 'a', $2 = NULL, …` (values quoted SQL-style, '' inside) into a positional array. */
export function parseParameters(detail: string): (string | null)[] {
  const params: (string | null)[] = [];
  const text = detail.replace(/^Parameters: /, '');
  const re = /\$(\d+) = (NULL|'((?:[^']|'')*)')/y;
  let at = 0;
  for (;;) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) break;
    params[Number(m[1]) - 1] = m[2] === 'NULL' ? null : m[3]!.replaceAll("''", "'");
    at = re.lastIndex;
    if (text.startsWith(', ', at)) at += 2;
    else break;
  }
  return params;
}

/** The statements of database `dbname` in a recorded server log, per backend pid, in log order. */
export function parseStatementLog(text: string, dbname: string): Map<number, CapturedStatement[]> {
  const byPid = new Map<number, CapturedStatement[]>();
  for (const record of text.split(/\n(?=@@\d+\|)/)) {
    // continuation lines of a multi-line message are indented with a tab
    const m = /^@@(\d+)\|([^|]*)\|(\w+):  ([\s\S]*)$/.exec(record.trimEnd().replaceAll('\n\t', '\n'));
    if (!m || m[2] !== dbname) continue;
    const [pid, level, message] = [Number(m[1]), m[3], m[4]!];
    const list = byPid.get(pid) ?? [];
    byPid.set(pid, list);
    // extended protocol: "execute <unnamed>: SQL"; simple protocol: "statement: SQL"
    const statement = /^(?:execute [^:]+|statement): ([\s\S]*)$/.exec(message);
    if (level === 'LOG' && statement) list.push({ sql: statement[1]!, params: [] });
    else if (level === 'DETAIL' && message.startsWith('Parameters: ') && list.length) list[list.length - 1]!.params = parseParameters(message);
  }
  return byPid;
}

/** The statement POST /v1/orders issues after the order committed (X-Stockwire-LSN, commit-position.ts). */
const COMMIT_POSITION = /^SELECT pg_current_wal_insert_lsn\(\)/;

/**
 * Cuts a session's statements into order requests: the location check … the order insert, and the
 * commit-position read right after it. Background statements that ran in between on the same connection
 * make a request's shape differ; `mostCommonShape` drops those.
 */
export function splitRequests(statements: CapturedStatement[]): CapturedStatement[][] {
  const requests: CapturedStatement[][] = [];
  let current: CapturedStatement[] | undefined;
  let closed: CapturedStatement[] | undefined;
  for (const s of statements) {
    if (closed && COMMIT_POSITION.test(s.sql)) closed.push(s);
    closed = undefined;
    if (FIRST_STATEMENT.test(s.sql)) current = [s];
    else current?.push(s);
    if (current && LAST_STATEMENT.test(s.sql)) {
      requests.push(current);
      closed = current;
      current = undefined;
    }
  }
  return requests;
}

const shapeOf = (request: CapturedStatement[]) => request.map((s) => `${s.sql}\u0000${s.params.map((p) => (p === null ? 'N' : 'v')).join('')}`).join('\u0001');

/** The requests sharing the most common statement sequence (same SQL texts, same NULL parameters). */
export function mostCommonShape(requests: CapturedStatement[][]): CapturedStatement[][] {
  const groups = new Map<string, CapturedStatement[][]>();
  for (const r of requests) groups.set(shapeOf(r), [...(groups.get(shapeOf(r)) ?? []), r]);
  return [...groups.values()].sort((a, b) => b.length - a.length)[0] ?? [];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const variable = (statement: number, param: number) => `s${statement + 1}_${param + 1}`;

export interface PgbenchWorkload {
  /** the pgbench script: pick a captured request, then run its statements with its parameters */
  script: string;
  /** rows of the parameter table: variable name → captured value, one row per request */
  rows: Record<string, string>[];
  /** the parameter table's columns */
  columns: string[];
}

/**
 * One pgbench script for requests of one shape. Run with -M prepared, so every `:variable` is a bound
 * parameter of a prepared statement, exactly as the API runs its named prepared statements. Each
 * transaction first picks a captured request at random (`\gset` from bench.reservation_params: one
 * primary-key read, the only statement that is not the API's); the order id parameter (`$n::uuid`)
 * becomes gen_random_uuid() so replays do not collide; parameters NULL in every request stay NULL.
 */
export function pgbenchWorkload(requests: CapturedStatement[][], table = 'bench.reservation_params'): PgbenchWorkload {
  const [first] = requests;
  if (!first) throw new Error('no captured request');
  const columns: string[] = [];
  const statements = first.map((s, j) => {
    const text = s.sql.replace(/\$(\d+)(?!\d)(::uuid)?/g, (whole, n: string, uuidCast: string | undefined) => {
      const i = Number(n) - 1;
      if (i >= s.params.length) throw new Error(`statement has $${n} but the log gave ${s.params.length} parameters`);
      const value = s.params[i] ?? null;
      if (value === null) return whole.replace(`$${n}`, 'NULL');
      if (uuidCast && UUID.test(value)) return 'gen_random_uuid()';
      const name = variable(j, i);
      if (!columns.includes(name)) columns.push(name);
      return `:${name}${uuidCast ?? ''}`;
    });
    // pgbench's lexer (psql's) takes a statement over several lines up to its `;`, comments included
    return `${text.trim()};`;
  });
  const rows = requests.map((r) => Object.fromEntries(columns.map((name) => {
    const [, j, i] = /^s(\d+)_(\d+)$/.exec(name)!;
    return [name, r[Number(j) - 1]!.params[Number(i) - 1]!];
  })));
  const pick = `\\set r random(1, ${requests.length})\nSELECT ${columns.join(', ')} FROM ${table} WHERE n = :r \\gset\n`;
  return { script: pick + statements.join('\n') + '\n', rows, columns };
}

/** Creates the parameter table the script reads (schema `bench`, outside the application's tables). */
export async function storeWorkload(url: string, workload: PgbenchWorkload, table = 'bench.reservation_params'): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('CREATE SCHEMA IF NOT EXISTS bench');
    await client.query(`DROP TABLE IF EXISTS ${table}`);
    await client.query(`CREATE TABLE ${table} (n int PRIMARY KEY, ${workload.columns.map((c) => `${c} text`).join(', ')})`);
    for (const [k, row] of workload.rows.entries()) {
      await client.query(`INSERT INTO ${table} VALUES ($1, ${workload.columns.map((_, i) => `$${i + 2}`).join(', ')})`, [k + 1, ...workload.columns.map((c) => row[c])]);
    }
    await client.query(`ANALYZE ${table}`);
  } finally {
    await client.end();
  }
}

/** Writes the script; returns its path. */
export async function writeWorkloadScript(dir: string, workload: PgbenchWorkload): Promise<string> {
  const file = path.join(dir, 'reservation.sql');
  await writeFile(file, workload.script);
  return file;
}
