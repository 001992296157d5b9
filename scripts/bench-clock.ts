/**
 * Epoch milliseconds with sub-millisecond resolution, aligned with the wall clock (which Postgres' commit
 * timestamps use): performance.timeOrigin can be off the wall clock, so the offset is measured once, at a
 * tick of Date.now().
 */
const clockOffset = (() => {
  const start = Date.now();
  let t = Date.now();
  while (t === start) t = Date.now();
  return t - performance.now();
})();

export const preciseNow = (): number => clockOffset + performance.now();
