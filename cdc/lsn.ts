/**
 * Postgres log sequence numbers ("16/B374D848") as bigints, so they compare and order correctly (string
 * comparison does not: "9/0" > "10/0").
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses "X/Y" (hex halves) into a 64-bit position. */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** Formats a position the way Postgres prints it (upper-case hex, no padding). */
export function formatLsn(lsn: Lsn): string {
  // the halves as Numbers: Number#toString(16) is much cheaper than BigInt's (this runs once per event)
  return `${Number(lsn >> 32n).toString(16)}/${Number(lsn & 0xffffffffn).toString(16)}`.toUpperCase();
}

/** True when `text` is a well-formed LSN. */
export function isLsn(text: string): boolean {
  return LSN_TEXT.test(text);
}

/** Negative, zero or positive as a is before, at or after b. */
export function compareLsn(a: string, b: string): number {
  const d = parseLsn(a) - parseLsn(b);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** The later of two positions. */
export function maxLsn(a: string, b: string): string {
  return compareLsn(a, b) >= 0 ? a : b;
}
