/**
 * timestamptz values of decoded rows straight to the envelope's ISO form. The pg driver parses each
 * value into a Date (a regular expression and a Date per value) and the envelope turns it back into an
 * ISO string; for the UTC text the replication session sends (its TimeZone is set to UTC) the ISO
 * string is a rearrangement of the text. Invariant: for such text the result is exactly what
 * `driverParse(text).toISOString()` gives (milliseconds truncated, as Date does); any other text
 * (another offset, BC, infinity, a five-digit year) goes to the driver's parser unchanged.
 */

export const TIMESTAMPTZ_OID = 1184;

// "2026-12-03 16:01:44.123456+00": four-digit year from 1000, optional fraction, UTC offset
const UTC_TEXT = /^[1-9]\d{3}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?\+00$/;

/** ISO string (UTC, milliseconds) for plain UTC timestamptz text, or undefined for any other text. */
export function isoFromUtcText(text: string): string | undefined {
  if (!UTC_TEXT.test(text)) return undefined;
  // YYYY-MM-DD HH:MM:SS[.ffffff]+00: the fraction, if any, runs from index 20 to the offset
  const millis = text.length > 22 ? `${text.slice(20, text.length - 3)}00`.slice(0, 3) : '000';
  return `${text.slice(0, 10)}T${text.slice(11, 19)}.${millis}Z`;
}

/** A timestamptz column parser that turns plain UTC text into the ISO string and leaves the rest to `parse`. */
export function fastUtcParser(parse: (text: string) => unknown): (text: string) => unknown {
  return (text) => isoFromUtcText(text) ?? parse(text);
}
