import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { parseCidrList, unmapIpv4, type CidrList } from './cidr.ts';
import { clientIp } from './client-ip.ts';

/** The client address clientIp finds for a request from `peer` carrying `forwarded` as X-Forwarded-For. */
async function resolve(peer: string | undefined, forwarded: string | undefined, trusted: CidrList | undefined) {
  const app = new Hono();
  app.get('/', (c) => c.json({ ip: clientIp(c, trusted) }));
  const res = await app.request('/', { headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }, { incoming: { socket: { remoteAddress: peer } } });
  return ((await res.json()) as { ip: string | null }).ip;
}

describe('parseCidrList', () => {
  it('matches IPv4 and IPv6 ranges and bare addresses', () => {
    const list = parseCidrList('10.0.0.0/8, 2001:db8::/32, 192.0.2.7 ,::1');
    expect(list.entries).toEqual(['10.0.0.0/8', '2001:db8::/32', '192.0.2.7', '::1']);
    expect(list.has('10.255.0.1')).toBe(true);
    expect(list.has('11.0.0.1')).toBe(false);
    expect(list.has('192.0.2.7')).toBe(true);
    expect(list.has('192.0.2.8')).toBe(false);
    expect(list.has('2001:db8:ffff::1')).toBe(true);
    expect(list.has('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe(true);
    expect(list.has('2001:db9::1')).toBe(false);
    expect(list.has('::1')).toBe(true);
    expect(list.has('::2')).toBe(false);
  });

  it('matches IPv4-mapped IPv6 addresses against IPv4 ranges', () => {
    const list = parseCidrList('127.0.0.1/32,10.0.0.0/8');
    expect(list.has('::ffff:127.0.0.1')).toBe(true);
    expect(list.has('::FFFF:10.1.2.3')).toBe(true);
    expect(list.has('::ffff:11.1.2.3')).toBe(false);
    expect(unmapIpv4('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(unmapIpv4('2001:db8::1')).toBe('2001:db8::1');
  });

  it('does not let an IPv4 range match IPv6 addresses or garbage', () => {
    const list = parseCidrList('0.0.0.0/0');
    expect(list.has('1.2.3.4')).toBe(true);
    expect(list.has('2001:db8::1')).toBe(false);
    expect(list.has('not-an-ip')).toBe(false);
    expect(list.has('')).toBe(false);
  });

  it('refuses bad entries, naming them', () => {
    expect(() => parseCidrList('10.0.0.0/33')).toThrow('bad prefix length in "10.0.0.0/33"');
    expect(() => parseCidrList('2001:db8::/129')).toThrow(/bad prefix length/);
    expect(() => parseCidrList('10.0.0.0/8x')).toThrow(/bad prefix length/);
    expect(() => parseCidrList('example.com')).toThrow('not an IP address or CIDR range: "example.com"');
    expect(() => parseCidrList('10.0.0/8')).toThrow(/not an IP address/);
    expect(parseCidrList(' , ').entries).toEqual([]);
  });
});

describe('clientIp', () => {
  const trusted = parseCidrList('127.0.0.1/32, ::1, 10.0.0.0/8, fd00::/8');

  it('is the socket peer without trusted proxies, whatever X-Forwarded-For says', async () => {
    expect(await resolve('127.0.0.1', '10.1.2.3', undefined)).toBe('127.0.0.1');
    expect(await resolve('::ffff:127.0.0.1', '10.1.2.3', undefined)).toBe('127.0.0.1');
    expect(await resolve('2001:db8::5', '10.1.2.3', undefined)).toBe('2001:db8::5');
    expect(await resolve(undefined, '10.1.2.3', undefined)).toBeNull();
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    expect(await resolve('192.0.2.1', '10.1.2.3', trusted)).toBe('192.0.2.1');
    expect(await resolve('2001:db8::5', '10.1.2.3', trusted)).toBe('2001:db8::5');
  });

  it('takes the right-most untrusted hop behind trusted proxies (IPv4, IPv6 and v4-mapped)', async () => {
    expect(await resolve('127.0.0.1', '198.51.100.4', trusted)).toBe('198.51.100.4');
    // the client wrote the left part; the proxy appended what it saw
    expect(await resolve('127.0.0.1', '10.1.2.3, 192.0.2.9', trusted)).toBe('192.0.2.9');
    expect(await resolve('::ffff:127.0.0.1', '192.0.2.9, 10.9.9.9', trusted)).toBe('192.0.2.9');
    expect(await resolve('::1', '2001:db8::7, fd00::1', trusted)).toBe('2001:db8::7');
    expect(await resolve('fd12::3', '::ffff:198.51.100.4', trusted)).toBe('198.51.100.4');
  });

  it('falls back sensibly when every hop is trusted, or the header is junk', async () => {
    expect(await resolve('127.0.0.1', '10.1.2.3, 10.4.5.6', trusted)).toBe('10.1.2.3');
    expect(await resolve('127.0.0.1', 'garbage, , unknown', trusted)).toBe('127.0.0.1');
    expect(await resolve('127.0.0.1', undefined, trusted)).toBe('127.0.0.1');
    // junk hops are skipped, not taken as the client
    expect(await resolve('127.0.0.1', '192.0.2.9, garbage', trusted)).toBe('192.0.2.9');
  });
});
