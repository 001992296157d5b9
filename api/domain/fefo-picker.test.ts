import { describe, expect, it } from 'vitest';
import { isSellable, pickFefo, type PickableLot } from './fefo-picker.ts';

const TODAY = '2026-12-03';

describe('isSellable', () => {
  it('sells a lot only while its expiry is after today', () => {
    expect(isSellable('2026-12-04', TODAY)).toBe(true);
    expect(isSellable('2027-01-01', TODAY)).toBe(true);
    expect(isSellable('2026-12-03', TODAY)).toBe(false); // expires today: not sold
    expect(isSellable('2026-12-02', TODAY)).toBe(false);
  });
});

describe('pickFefo', () => {
  it('takes from the earliest-expiring lot first', () => {
    const lots: PickableLot[] = [
      { id: '1', expiresOn: '2027-06-01', available: 10 },
      { id: '2', expiresOn: '2027-01-01', available: 10 },
      { id: '3', expiresOn: '2027-03-01', available: 10 },
    ];
    expect(pickFefo(lots, 4, TODAY)).toEqual({ picks: [{ lotId: '2', qty: 4 }], short: 0 });
  });

  it('splits across lots in expiry order when one lot is not enough', () => {
    const lots: PickableLot[] = [
      { id: '1', expiresOn: '2027-06-01', available: 4 },
      { id: '2', expiresOn: '2027-01-01', available: 3 },
      { id: '3', expiresOn: '2027-03-01', available: 5 },
    ];
    expect(pickFefo(lots, 10, TODAY)).toEqual({
      picks: [{ lotId: '2', qty: 3 }, { lotId: '3', qty: 5 }, { lotId: '1', qty: 2 }],
      short: 0,
    });
  });

  it('breaks expiry ties by numeric id, not string order', () => {
    const lots: PickableLot[] = [
      { id: '10', expiresOn: '2027-01-01', available: 5 },
      { id: '9', expiresOn: '2027-01-01', available: 5 },
      { id: '100', expiresOn: '2027-01-01', available: 5 },
    ];
    expect(pickFefo(lots, 12, TODAY).picks).toEqual([
      { lotId: '9', qty: 5 },
      { lotId: '10', qty: 5 },
      { lotId: '100', qty: 2 },
    ]);
  });

  it('never picks an expired lot or a lot expiring today', () => {
    const lots: PickableLot[] = [
      { id: '1', expiresOn: '2026-12-01', available: 50 },
      { id: '2', expiresOn: TODAY, available: 50 },
      { id: '3', expiresOn: '2026-12-04', available: 2 },
    ];
    const result = pickFefo(lots, 5, TODAY);
    expect(result.picks).toEqual([{ lotId: '3', qty: 2 }]);
    expect(result.short).toBe(3);
  });

  it('reports the shortfall when the lots do not hold enough', () => {
    const lots: PickableLot[] = [{ id: '1', expiresOn: '2027-01-01', available: 2 }];
    expect(pickFefo(lots, 7, TODAY)).toEqual({ picks: [{ lotId: '1', qty: 2 }], short: 5 });
    expect(pickFefo([], 3, TODAY)).toEqual({ picks: [], short: 3 });
  });

  it('skips lots with nothing free and picks nothing for qty 0', () => {
    const lots: PickableLot[] = [
      { id: '1', expiresOn: '2027-01-01', available: 0 },
      { id: '2', expiresOn: '2027-02-01', available: -3 },
      { id: '3', expiresOn: '2027-03-01', available: 4 },
    ];
    expect(pickFefo(lots, 3, TODAY).picks).toEqual([{ lotId: '3', qty: 3 }]);
    expect(pickFefo(lots, 0, TODAY)).toEqual({ picks: [], short: 0 });
  });

  it('honours what earlier picks already took and records its own picks in `taken`', () => {
    const lots: PickableLot[] = [
      { id: '1', expiresOn: '2027-01-01', available: 5 },
      { id: '2', expiresOn: '2027-02-01', available: 5 },
    ];
    const taken = new Map<string, number>([['1', 4]]);
    const first = pickFefo(lots, 3, TODAY, taken);
    expect(first.picks).toEqual([{ lotId: '1', qty: 1 }, { lotId: '2', qty: 2 }]);
    expect(Object.fromEntries(taken)).toEqual({ '1': 5, '2': 2 });
    const second = pickFefo(lots, 4, TODAY, taken);
    expect(second).toEqual({ picks: [{ lotId: '2', qty: 3 }], short: 1 });
    expect(Object.fromEntries(taken)).toEqual({ '1': 5, '2': 5 });
  });

  it('does not modify the lots it is given', () => {
    const lots: PickableLot[] = [
      { id: '2', expiresOn: '2027-02-01', available: 5 },
      { id: '1', expiresOn: '2027-01-01', available: 5 },
    ];
    const copy = structuredClone(lots);
    pickFefo(lots, 7, TODAY);
    expect(lots).toEqual(copy);
  });
});
