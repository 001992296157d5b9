import { describe, expect, it } from 'vitest';
import { sniffFormat } from './file-sniffer.ts';
import { planCounts } from './import-applier.ts';
import { checkRowsAgainstCatalog, checkRowShapes, lotKey, type CatalogFacts } from './row-validator.ts';
import { mapHeader } from './row-parser.ts';
import { csvField } from '../stock-export.ts';

const facts: CatalogFacts = {
  products: new Map([
    ['A', { kind: 'simple', lot_tracked: false }],
    ['K', { kind: 'bundle', lot_tracked: false }],
    ['L', { kind: 'simple', lot_tracked: true }],
  ]),
  locations: new Set(['MAIN']),
  lots: new Map([[lotKey('L', 'MAIN', 'L1'), '7']]),
};

describe('stock import rows', () => {
  it('maps headers case-insensitively with on_hand as counted, ignoring unknown columns', () => {
    expect(mapHeader(['SKU', ' Location ', 'On_Hand', 'name', 'Lot Code'], 1)).toEqual({ columns: ['sku', 'location', 'counted', null, 'lot_code'], errors: [] });
    expect(mapHeader(['sku', 'counted', 'on_hand'], 1).errors.map((e) => e.code)).toEqual(['duplicate_column', 'missing_column']);
    expect(mapHeader(['sku', 'counted'], 1, 'MAIN').errors).toEqual([]);
  });

  it('refuses formula cells and formula-looking text, and keeps counted a whole number in range', () => {
    const { rows, errors } = checkRowShapes([
      { row: 2, cells: { sku: 'A', location: 'MAIN', counted: '4' } },
      { row: 3, cells: { sku: 'A', location: 'MAIN', counted: { formula: 'B2*2' } } },
      { row: 4, cells: { sku: '=1+1', location: 'MAIN', counted: 1, note: '@me' } },
      { row: 5, cells: { sku: 'A', location: 'MAIN', counted: '-5' } },
      { row: 6, cells: { sku: 'A', location: 'MAIN', counted: 2.5 } },
      { row: 7, cells: { sku: 'A', location: 'MAIN', counted: '1000001' } },
      { row: 8, cells: { sku: '', location: 'MAIN', counted: '' } },
    ]);
    expect(rows).toEqual([{ row: 2, sku: 'A', location: 'MAIN', counted: 4 }]);
    expect(errors.map((e) => [e.row, e.column, e.code])).toEqual([
      [3, 'counted', 'formula_cell'],
      [4, 'sku', 'formula_injection'],
      [4, 'note', 'formula_injection'],
      [5, 'counted', 'invalid_value'],
      [6, 'counted', 'invalid_value'],
      [7, 'counted', 'invalid_value'],
      [8, 'sku', 'required'],
      [8, 'counted', 'required'],
    ]);
    expect(errors.find((e) => e.row === 7)!.message).toBe('counted must be at most 1,000,000');
  });

  it('checks rows against the catalog and each other', () => {
    const errors = checkRowsAgainstCatalog([
      { row: 2, sku: 'A', location: 'MAIN', counted: 1 },
      { row: 3, sku: 'A', location: 'MAIN', counted: 2 },
      { row: 4, sku: 'K', location: 'MAIN', counted: 1 },
      { row: 5, sku: 'L', location: 'MAIN', counted: 1 },
      { row: 6, sku: 'L', location: 'MAIN', counted: 1, lot_code: 'L9' },
      { row: 7, sku: 'L', location: 'MAIN', counted: 1, lot_code: 'L1' },
      { row: 8, sku: 'Z', location: 'ELSEWHERE', counted: 1 },
    ], facts);
    expect(errors.map((e) => [e.row, e.code])).toEqual([
      [3, 'duplicate_row'], [4, 'bundle_has_no_stock'], [5, 'lot_required'], [6, 'unknown_lot'], [8, 'unknown_sku'], [8, 'unknown_location'],
    ]);
  });

  it('plans a delta per changed row, nothing for equal counts, and refuses counts below what is reserved', () => {
    const plan = planCounts([
      { row: 2, sku: 'A', location: 'MAIN', counted: 3 },
      { row: 3, sku: 'L', location: 'MAIN', counted: 5, lot_code: 'L1' },
      { row: 4, sku: 'B', location: 'MAIN', counted: 0 },
    ], facts, new Map([[`A\u0000MAIN`, { on_hand: 10, reserved: 4 }]]), new Map([['7', { on_hand: 2, reserved: 0 }]]));
    expect(plan.movements).toEqual([{ sku: 'L', location: 'MAIN', lotId: '7', deltaOnHand: 3, note: null }]);
    expect(plan.unchanged).toBe(1);
    expect(plan.errors.map((e) => [e.row, e.code])).toEqual([[2, 'below_reserved']]);
  });
});

describe('file sniffing and CSV export fields', () => {
  it('decides by content: zip → xlsx, UTF-8 text → csv, anything else → 415', () => {
    expect(sniffFormat(Buffer.from([0x50, 0x4b, 0x03, 0x04, 1, 2]))).toBe('xlsx');
    expect(sniffFormat(Buffer.from('\uFEFFsku,location,counted\nÄ-1,MAIN,1\n'))).toBe('csv');
    for (const bytes of [[0xd0, 0xcf, 0x11, 0xe0, 0], [0x25, 0x50, 0x44, 0x46, 0x2d], [0x89, 0x50, 0x4e, 0x47], [0x61, 0x00, 0x62], [0xc3, 0x28]]) {
      expect(() => sniffFormat(Buffer.from(bytes))).toThrow(expect.objectContaining({ status: 415, code: 'unsupported_file' }));
    }
  });

  it('quotes per RFC 4180 and neutralises text a spreadsheet would run as a formula', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField('=cmd')).toBe("'=cmd");
    expect(csvField('-1+2')).toBe("'-1+2");
    expect(csvField('@x')).toBe("'@x");
    expect(csvField('\tx')).toBe("'\tx");
    expect(csvField('line\nbreak')).toBe('"line\nbreak"');
    expect(csvField(-3)).toBe('-3');
    expect(csvField(null)).toBe('');
  });
});
