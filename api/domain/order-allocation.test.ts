import { describe, expect, it } from 'vitest';
import type { PickableLot } from './fefo-picker.ts';
import { allocateOrder, componentSkus, type AllocationInput, type CatalogEntry } from './order-allocation.ts';

const TODAY = '2026-12-03';

const catalog = new Map<string, CatalogEntry>([
  ['SHEET', { sku: 'SHEET', kind: 'simple', lotTracked: false }],
  ['PILLOW', { sku: 'PILLOW', kind: 'simple', lotTracked: false }],
  ['CREAM', { sku: 'CREAM', kind: 'simple', lotTracked: true }],
  ['SET', { sku: 'SET', kind: 'bundle', lotTracked: false, components: [{ sku: 'SHEET', qty: 1 }, { sku: 'CREAM', qty: 2 }] }],
  ['DUO', { sku: 'DUO', kind: 'bundle', lotTracked: false, components: [{ sku: 'PILLOW', qty: 2 }] }],
]);

const creamLots: PickableLot[] = [
  { id: '7', expiresOn: '2027-05-01', available: 4 },
  { id: '5', expiresOn: '2027-01-01', available: 3 },
  { id: '6', expiresOn: '2026-12-01', available: 50 }, // expired
];

function input(lines: { sku: string; qty: number }[], overrides: Partial<AllocationInput> = {}): AllocationInput {
  return {
    location: 'MAIN',
    today: TODAY,
    lines: lines.map((l, i) => ({ lineNo: i + 1, ...l })),
    catalog,
    available: new Map([['SHEET', 10], ['PILLOW', 5], ['CREAM', 7]]),
    lots: new Map([['CREAM', creamLots]]),
    ...overrides,
  };
}

describe('componentSkus', () => {
  it('lists the distinct component skus an order touches, sorted', () => {
    const lines = input([{ sku: 'SET', qty: 1 }, { sku: 'SHEET', qty: 2 }, { sku: 'DUO', qty: 1 }]).lines;
    expect(componentSkus(lines, catalog)).toEqual(['CREAM', 'PILLOW', 'SHEET']);
  });
});

describe('allocateOrder', () => {
  it('reserves simple lines from the stock level without a lot', () => {
    expect(allocateOrder(input([{ sku: 'SHEET', qty: 3 }, { sku: 'PILLOW', qty: 5 }]))).toEqual({
      ok: true,
      picks: [
        { lineNo: 1, sku: 'SHEET', lotId: null, qty: 3 },
        { lineNo: 2, sku: 'PILLOW', lotId: null, qty: 5 },
      ],
    });
  });

  it('picks lot-tracked components FEFO, skipping expired lots', () => {
    expect(allocateOrder(input([{ sku: 'CREAM', qty: 5 }]))).toEqual({
      ok: true,
      picks: [
        { lineNo: 1, sku: 'CREAM', lotId: '5', qty: 3 },
        { lineNo: 1, sku: 'CREAM', lotId: '7', qty: 2 },
      ],
    });
  });

  it('expands bundle lines to their components, tagged with the bundle line number', () => {
    const result = allocateOrder(input([{ sku: 'SHEET', qty: 1 }, { sku: 'SET', qty: 2 }]));
    expect(result).toEqual({
      ok: true,
      picks: [
        { lineNo: 1, sku: 'SHEET', lotId: null, qty: 1 },
        { lineNo: 2, sku: 'SHEET', lotId: null, qty: 2 },
        { lineNo: 2, sku: 'CREAM', lotId: '5', qty: 3 },
        { lineNo: 2, sku: 'CREAM', lotId: '7', qty: 1 },
      ],
    });
  });

  it('counts units used by earlier lines of the same order (levels and lots)', () => {
    // two CREAM lines: 3 then 4 = 7 = everything sellable; a third unit would be short
    const ok = allocateOrder(input([{ sku: 'CREAM', qty: 3 }, { sku: 'CREAM', qty: 4 }]));
    expect(ok).toEqual({
      ok: true,
      picks: [
        { lineNo: 1, sku: 'CREAM', lotId: '5', qty: 3 },
        { lineNo: 2, sku: 'CREAM', lotId: '7', qty: 4 },
      ],
    });
    const short = allocateOrder(input([{ sku: 'PILLOW', qty: 3 }, { sku: 'DUO', qty: 2 }]));
    expect(short).toEqual({
      ok: false,
      short: [{ sku: 'PILLOW', location: 'MAIN', requested: 7, available: 5, line_skus: ['DUO', 'PILLOW'] }],
    });
  });

  it('reports every short component, sorted, with the lines that needed it, and reserves nothing', () => {
    const result = allocateOrder(input([{ sku: 'SET', qty: 4 }, { sku: 'PILLOW', qty: 6 }, { sku: 'SHEET', qty: 1 }]));
    expect(result).toEqual({
      ok: false,
      short: [
        { sku: 'CREAM', location: 'MAIN', requested: 8, available: 7, line_skus: ['SET'] },
        { sku: 'PILLOW', location: 'MAIN', requested: 6, available: 5, line_skus: ['PILLOW'] },
      ],
    });
  });

  it('is short when the level allows it but the sellable lots do not', () => {
    // level says 7 free, but only 3 units sit in unexpired lots
    const result = allocateOrder(input([{ sku: 'CREAM', qty: 4 }], {
      lots: new Map([['CREAM', [{ id: '5', expiresOn: '2027-01-01', available: 3 }, { id: '6', expiresOn: TODAY, available: 20 }]]]),
    }));
    expect(result).toEqual({
      ok: false,
      short: [{ sku: 'CREAM', location: 'MAIN', requested: 4, available: 3, line_skus: ['CREAM'] }],
    });
  });

  it('is short when the lots hold more than the level allows', () => {
    const result = allocateOrder(input([{ sku: 'CREAM', qty: 3 }], { available: new Map([['CREAM', 2]]) }));
    expect(result).toEqual({
      ok: false,
      short: [{ sku: 'CREAM', location: 'MAIN', requested: 3, available: 2, line_skus: ['CREAM'] }],
    });
  });

  it('treats a missing or negative stock row as zero available', () => {
    const result = allocateOrder(input([{ sku: 'SHEET', qty: 1 }, { sku: 'PILLOW', qty: 1 }], {
      available: new Map([['PILLOW', -2]]),
    }));
    expect(result).toEqual({
      ok: false,
      short: [
        { sku: 'PILLOW', location: 'MAIN', requested: 1, available: 0, line_skus: ['PILLOW'] },
        { sku: 'SHEET', location: 'MAIN', requested: 1, available: 0, line_skus: ['SHEET'] },
      ],
    });
  });
});
