import { describe, expect, it } from 'vitest';
import { bundleAvailability, expandLine } from './bundle-availability.ts';

describe('bundleAvailability', () => {
  it('is the minimum over components of floor(available / qty)', () => {
    const components = [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }, { sku: 'C', qty: 3 }];
    const available = new Map([['A', 10], ['B', 9], ['C', 14]]);
    // A: 10, B: floor(9/2)=4, C: floor(14/3)=4
    expect(bundleAvailability(components, available)).toBe(4);
    available.set('C', 11); // floor(11/3) = 3
    expect(bundleAvailability(components, available)).toBe(3);
  });

  it('is zero when a component has no stock row or less than one bundle needs', () => {
    const components = [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 5 }];
    expect(bundleAvailability(components, new Map([['A', 10]]))).toBe(0);
    expect(bundleAvailability(components, new Map([['A', 10], ['B', 4]]))).toBe(0);
  });

  it('treats a negative available as zero rather than negative', () => {
    expect(bundleAvailability([{ sku: 'A', qty: 2 }], new Map([['A', -7]]))).toBe(0);
  });

  it('is zero for a bundle without components', () => {
    expect(bundleAvailability([], new Map([['A', 10]]))).toBe(0);
  });

  it('returns a finite integer for a single component', () => {
    expect(bundleAvailability([{ sku: 'A', qty: 4 }], new Map([['A', 17]]))).toBe(4);
  });
});

describe('expandLine', () => {
  it('returns the line itself for a simple product', () => {
    expect(expandLine({ sku: 'A', qty: 3 }, undefined)).toEqual([{ sku: 'A', qty: 3 }]);
  });

  it('multiplies each component by the ordered bundle quantity', () => {
    expect(expandLine({ sku: 'BUNDLE', qty: 3 }, [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }])).toEqual([
      { sku: 'A', qty: 3 },
      { sku: 'B', qty: 6 },
    ]);
  });
});
