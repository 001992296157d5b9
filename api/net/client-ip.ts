/**
 * The client's address. Without trusted proxies it is the socket's peer. Behind proxies listed in
 * TRUST_PROXY_CIDRS, X-Forwarded-For is read from the right, skipping addresses of trusted proxies:
 * the first untrusted one is the client (the left part of the header is whatever the client sent, so
 * it is never believed).
 */
import type { Context } from 'hono';
import { isIP } from 'node:net';
import { unmapIpv4, type CidrList } from './cidr.ts';

export function socketAddress(c: Context): string | null {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  const address = env?.incoming?.socket?.remoteAddress;
  return address ? unmapIpv4(address) : null;
}

export function clientIp(c: Context, trustedProxies: CidrList | undefined): string | null {
  const peer = socketAddress(c);
  if (!peer || !trustedProxies || !trustedProxies.has(peer)) return peer;
  const hops = (c.req.header('x-forwarded-for') ?? '').split(',').map((h) => unmapIpv4(h.trim())).filter((h) => isIP(h) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) if (!trustedProxies.has(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}
