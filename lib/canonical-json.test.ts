import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';

describe('canonicalJson', () => {
  it('sorts keys at every level, drops undefined members and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: undefined, b: null } })).toBe('{"a":{"b":null,"d":[2,1]},"b":1}');
    expect(canonicalJson({ x: 1, y: 2 })).toBe(canonicalJson({ y: 2, x: 1 }));
  });

  it('writes Dates as ISO strings, not as empty objects', () => {
    expect(canonicalJson({ at: new Date('2026-12-03T10:00:00Z') })).toBe('{"at":"2026-12-03T10:00:00.000Z"}');
  });
});
