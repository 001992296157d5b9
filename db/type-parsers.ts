/**
 * How values leave the pg driver in every process (API reads and CDC decoding alike): dates stay ISO
 * strings (YYYY-MM-DD), because a lot's expiry is a calendar day, not an instant. bigint stays a string.
 */
import pg from 'pg';

pg.types.setTypeParser(pg.types.builtins.DATE, (value: string) => value);
