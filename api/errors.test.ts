import { describe, expect, it } from 'vitest';
import { databaseUnavailable, translateDbError } from './errors.ts';

describe('databaseUnavailable', () => {
  it('answers 503 database_unavailable while Postgres restarts or cannot be reached', () => {
    const cases = [
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('query failed', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }),
    ];
    for (const err of cases) expect(databaseUnavailable(err), err.message).toMatchObject({ status: 503, code: 'database_unavailable' });
  });

  it('leaves request faults and unknown errors alone', () => {
    expect(databaseUnavailable(Object.assign(new Error('check'), { code: '23514' }))).toBeUndefined();
    expect(databaseUnavailable(new Error('boom'))).toBeUndefined();
    expect(databaseUnavailable(undefined)).toBeUndefined();
    expect(translateDbError(Object.assign(new Error('x'), { code: '57P01' }))).toBeUndefined();
  });
});
