import { describe, expect, it } from 'vitest';
import { mostCommonShape, parseParameters, parseStatementLog, pgbenchWorkload, splitRequests } from './reservation-sql-capture.ts';

const log = [
  "@@41|stockwire|LOG:  execute sw_a: WITH catalog AS (SELECT 1)\n\tSELECT EXISTS (SELECT 1 FROM locations WHERE code = $2) AS known, $1::text[]",
  "@@41|stockwire|DETAIL:  Parameters: $1 = '{A,B}', $2 = 'BENCH'",
  "@@99|postgres|LOG:  statement: SELECT 1",
  "@@41|stockwire|LOG:  execute sw_b: WITH new_order AS (INSERT INTO orders (id, note) SELECT $1::uuid, $2 RETURNING id) SELECT $3",
  "@@41|stockwire|DETAIL:  Parameters: $1 = '0b7c1a52-35a4-4c43-a3d5-7f8f5e1c9a10', $2 = NULL, $3 = 'it''s 16:05:01'",
  "@@41|stockwire|LOG:  execute sw_c: SELECT pg_current_wal_insert_lsn()::text AS lsn",
  "@@41|stockwire|LOG:  execute sw_d: UPDATE audit_log SET chain_seq = $1",
  "@@41|stockwire|DETAIL:  Parameters: $1 = '7'",
].join('\n') + '\n';

describe('reservation SQL capture', () => {
  it('reads positional parameters with quotes, NULLs and commas inside values', () => {
    expect(parseParameters("Parameters: $1 = 'a, b', $2 = NULL, $3 = 'it''s'")).toEqual(['a, b', null, "it's"]);
  });

  it('keeps one database, joins continuation lines, attaches parameters and cuts requests at their first and last statements', () => {
    const sessions = parseStatementLog(log, 'stockwire');
    expect([...sessions.keys()]).toEqual([41]);
    const requests = splitRequests(sessions.get(41)!);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.map((s) => s.sql.slice(0, 22))).toEqual(['WITH catalog AS (SELEC', 'WITH new_order AS (INS', 'SELECT pg_current_wal_']);
    expect(requests[0]![0]!.sql).toContain('\nSELECT EXISTS');
    expect(requests[0]![1]!.params).toEqual(['0b7c1a52-35a4-4c43-a3d5-7f8f5e1c9a10', null, "it's 16:05:01"]);
  });

  it('makes one prepared-mode pgbench script: variables for values, NULL kept, a fresh order id per replay', () => {
    const requests = mostCommonShape(splitRequests(parseStatementLog(log + log, 'stockwire').get(41)!));
    expect(requests).toHaveLength(2);
    const w = pgbenchWorkload(requests);
    expect(w.columns).toEqual(['s1_2', 's1_1', 's2_3']); // in the order they appear
    expect(w.script).toContain('SELECT s1_2, s1_1, s2_3 FROM bench.reservation_params WHERE n = :r \\gset');
    expect(w.script).toContain('code = :s1_2) AS known, :s1_1::text[]');
    expect(w.script).toContain('SELECT gen_random_uuid(), NULL RETURNING id) SELECT :s2_3;');
    expect(w.rows[0]).toEqual({ s1_1: '{A,B}', s1_2: 'BENCH', s2_3: "it's 16:05:01" });
  });
});
