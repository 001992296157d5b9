/**
 * CIDR allowlists (IPv4 and IPv6) on node:net's BlockList. "10.0.0.0/8, 2001:db8::/32, 192.0.2.7" —
 * a bare address is a /32 or /128. IPv4-mapped IPv6 addresses (::ffff:10.1.2.3) match IPv4 ranges.
 */
import { BlockList, isIP } from 'node:net';

export interface CidrList {
  /** the entries as given, for messages and the API */
  readonly entries: readonly string[];
  has(address: string): boolean;
}

/** Parses a comma-separated list; throws with the bad entry named. */
export function parseCidrList(text: string | readonly string[]): CidrList {
  const entries = (typeof text === 'string' ? text.split(',') : [...text]).map((e) => e.trim()).filter(Boolean);
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/') as [string, string | undefined];
    const family = isIP(address);
    if (family === 0) throw new Error(`not an IP address or CIDR range: "${entry}"`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`bad prefix length in "${entry}"`);
    list.addSubnet(address, prefix, type);
  }
  return {
    entries,
    has(raw: string) {
      const address = unmapIpv4(raw);
      const family = isIP(address);
      return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** "::ffff:10.1.2.3" → "10.1.2.3"; anything else unchanged. */
export function unmapIpv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}
