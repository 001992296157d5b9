import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareLsn, formatLsn, isLsn, maxLsn, parseLsn } from './lsn.ts';

const MAX = (1n << 64n) - 1n;

describe('parseLsn', () => {
  it('reads the high and low 32-bit halves as hex', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/1')).toBe(1n);
    expect(parseLsn('0/FFFFFFFF')).toBe(0xffffffffn);
    expect(parseLsn('1/0')).toBe(1n << 32n);
    expect(parseLsn('16/B374D848')).toBe(0x16_b374d848n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(MAX);
  });

  it('accepts lower-case hex and zero-padded halves', () => {
    expect(parseLsn('16/b374d848')).toBe(0x16_b374d848n);
    expect(parseLsn('00000000/019D9B90')).toBe(0x19d9b90n);
    expect(parseLsn('00000000/019D9B90')).toBe(parseLsn('0/19D9B90'));
    expect(parseLsn('00000001/00000000')).toBe(1n << 32n);
  });

  it.each([
    '',
    '0',
    '/',
    '0/',
    '/0',
    '0/0/0',
    'G/0',
    '0/G',
    '123456789/0', // nine hex digits in a half
    '0/123456789',
    ' 0/0',
    '0/0 ',
    '0/0\n',
    '0x1/0',
    '-1/0',
    '+1/0',
    '1.5/0',
    '0\\0',
    '0:0',
    'not an lsn',
  ])('throws on %j', (text) => {
    expect(() => parseLsn(text)).toThrow(/not an LSN/);
    expect(isLsn(text)).toBe(false);
  });
});

describe('formatLsn', () => {
  it('prints upper-case hex halves without padding, as Postgres does', () => {
    expect(formatLsn(0n)).toBe('0/0');
    expect(formatLsn(1n)).toBe('0/1');
    expect(formatLsn(1n << 32n)).toBe('1/0');
    expect(formatLsn(0x16_b374d848n)).toBe('16/B374D848');
    expect(formatLsn(MAX)).toBe('FFFFFFFF/FFFFFFFF');
  });

  it('normalises zero-padded and lower-case input', () => {
    expect(formatLsn(parseLsn('00000000/019D9B90'))).toBe('0/19D9B90');
    expect(formatLsn(parseLsn('0000000A/0000000B'))).toBe('A/B');
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848');
  });

  it.each(['0/0', '0/1', '1/0', '0/19D9B90', '16/B374D848', '9/0', '10/0', 'FFFFFFFF/0', '0/FFFFFFFF', 'FFFFFFFF/FFFFFFFF'])(
    'round-trips %s',
    (text) => {
      expect(isLsn(text)).toBe(true);
      expect(formatLsn(parseLsn(text))).toBe(text);
    },
  );

  it('round-trips every 64-bit position', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX }), (lsn) => {
        const text = formatLsn(lsn);
        expect(text).toMatch(/^(0|[1-9A-F][0-9A-F]{0,7})\/(0|[1-9A-F][0-9A-F]{0,7})$/);
        expect(isLsn(text)).toBe(true);
        expect(parseLsn(text)).toBe(lsn);
      }),
    );
  });

  it('round-trips text with arbitrary zero padding to its canonical spelling', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 0xffffffffn }), fc.bigInt({ min: 0n, max: 0xffffffffn }), (hi, lo) => {
        const padded = `${hi.toString(16).padStart(8, '0')}/${lo.toString(16).padStart(8, '0')}`;
        expect(formatLsn(parseLsn(padded))).toBe(`${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`);
        expect(parseLsn(padded)).toBe((hi << 32n) | lo);
      }),
    );
  });
});

describe('compareLsn', () => {
  it('orders numerically where string order is wrong', () => {
    expect('9/0' > '10/0').toBe(true); // the trap this module exists for
    expect(compareLsn('9/0', '10/0')).toBe(-1);
    expect(compareLsn('10/0', '9/0')).toBe(1);
    expect('0/9' > '0/10').toBe(true);
    expect(compareLsn('0/9', '0/10')).toBe(-1);
    expect(compareLsn('0/FFFFFFFF', '1/0')).toBe(-1);
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('FFFFFFFF/FFFFFFFE', 'FFFFFFFF/FFFFFFFF')).toBe(-1);
  });

  it('treats different spellings of one position as equal', () => {
    expect(compareLsn('0/19D9B90', '00000000/019D9B90')).toBe(0);
    expect(compareLsn('16/b374d848', '16/B374D848')).toBe(0);
    expect(compareLsn('0/0', '0/0')).toBe(0);
  });

  it('sorts a list in WAL order', () => {
    const lsns = ['10/0', '9/0', '0/10', '0/9', 'A/0', '0/0', '1/0', '0/FFFFFFFF'];
    expect([...lsns].sort(compareLsn)).toEqual(['0/0', '0/9', '0/10', '0/FFFFFFFF', '1/0', '9/0', 'A/0', '10/0']);
  });

  it('agrees with bigint order on formatted positions', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX }), fc.bigInt({ min: 0n, max: MAX }), (a, b) => {
        expect(compareLsn(formatLsn(a), formatLsn(b))).toBe(a < b ? -1 : a > b ? 1 : 0);
      }),
    );
  });

  it('throws on malformed input on either side', () => {
    expect(() => compareLsn('0/0', 'x')).toThrow(/not an LSN/);
    expect(() => compareLsn('x', '0/0')).toThrow(/not an LSN/);
  });
});

describe('maxLsn', () => {
  it('returns the later position by numeric order', () => {
    expect(maxLsn('9/0', '10/0')).toBe('10/0');
    expect(maxLsn('10/0', '9/0')).toBe('10/0');
    expect(maxLsn('0/9', '0/10')).toBe('0/10');
    expect(maxLsn('0/FFFFFFFF', '1/0')).toBe('1/0');
  });

  it('returns the first argument, spelled as given, when both are equal', () => {
    expect(maxLsn('00000000/019D9B90', '0/19D9B90')).toBe('00000000/019D9B90');
    expect(maxLsn('0/19D9B90', '00000000/019D9B90')).toBe('0/19D9B90');
  });

  it('throws on malformed input', () => {
    expect(() => maxLsn('0/0', '')).toThrow(/not an LSN/);
  });
});
