import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fastUtcParser, isoFromUtcText, TIMESTAMPTZ_OID } from './timestamptz.ts';

const driverParse = pg.types.getTypeParser(TIMESTAMPTZ_OID) as (text: string) => unknown;
/** What the envelope held before: the driver's Date, as an ISO string (non-Dates as they are). */
const viaDriver = (text: string) => {
  const v = driverParse(text);
  return v instanceof Date ? v.toISOString() : v;
};

/** A deterministic pseudo-random generator, so a failure reproduces. */
function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const pad = (n: number, w: number) => String(n).padStart(w, '0');

describe('timestamptz text to ISO', () => {
  it('gives exactly the driver Date’s ISO string for UTC text, with and without a fraction', () => {
    for (const text of [
      '2026-12-03 16:01:44+00',
      '2026-12-03 16:01:44.1+00',
      '2026-12-03 16:01:44.12+00',
      '2026-12-03 16:01:44.123+00',
      '2026-12-03 16:01:44.1239+00',
      '2026-12-03 16:01:44.999999+00',
      '2026-12-03 16:01:44.000001+00',
      '1000-01-01 00:00:00+00',
      '2000-02-29 23:59:59.5+00',
      '9999-12-31 23:59:59.999999+00',
    ]) {
      expect(isoFromUtcText(text), text).toBe(viaDriver(text));
    }
  });

  it('agrees with the driver on 20,000 random UTC instants with 0–6 fraction digits', () => {
    const next = random(7);
    const mismatches: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const d = new Date(Date.UTC(1000 + Math.floor(next() * 9000), 0, 1) + Math.floor(next() * 365 * 86_400_000));
      const digits = Math.floor(next() * 7);
      const fraction = digits ? `.${pad(Math.floor(next() * 10 ** digits), digits)}` : '';
      const text = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)} ${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}${fraction}+00`;
      if (isoFromUtcText(text) !== viaDriver(text)) mismatches.push(text);
    }
    expect(mismatches).toEqual([]);
  });

  it('leaves every other form to the driver', () => {
    for (const text of [
      '2026-12-03 17:01:44.123+01',
      '2026-12-03 16:01:44.123-03:30',
      '0099-01-01 00:00:00+00',
      '12026-01-01 00:00:00+00',
      '2026-01-01 00:00:00+00 BC',
      'infinity',
      '-infinity',
    ]) {
      expect(isoFromUtcText(text), text).toBeUndefined();
      expect(fastUtcParser(driverParse)(text), text).toEqual(driverParse(text));
    }
  });

  it('the wrapped parser gives the ISO string for UTC text and the driver value otherwise', () => {
    const parse = fastUtcParser(driverParse);
    expect(parse('2026-12-03 16:01:44.123456+00')).toBe('2026-12-03T16:01:44.123Z');
    expect(parse('2026-12-03 17:01:44.123456+01')).toEqual(new Date('2026-12-03T16:01:44.123Z'));
  });
});
