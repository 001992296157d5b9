/**
 * The API as a listening process over HTTPS (issue 6): a development certificate made by the launcher's
 * own helper, TLS 1.2 as the floor, HSTS only over TLS, the plain-HTTP port that only redirects, and CORS
 * for the configured origins only (a preflight from any other origin learns nothing).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HSTS_HEADER, loadTlsOptions } from '../api/tls.ts';
import { ensureDevCertificate, type DevCertificate } from '../scripts/dev-cert.ts';
import { freePort } from './free-port.ts';
import { createHarness, TEST_PII_KEYS, TEST_TOKEN_SETTINGS, type Harness } from './harness.ts';
import { killAll, startNodeProcess, until, type ManagedProcess } from './pipeline-harness.ts';

const SHOP = 'https://shop.example';
let h: Harness;
let dir: string;
let cert: DevCertificate;
let ca: Buffer;
let ports: { tls: number; redirect: number; plain: number };

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  protocol?: string | null;
}

function apiEnv(port: number, extra: Record<string, string>): Record<string, string> {
  return {
    DATABASE_URL: h.url, JWT_SECRET: TEST_TOKEN_SETTINGS.secret, PII_KEYS: `${TEST_PII_KEYS[0]!.kid}:${TEST_PII_KEYS[0]!.key.toString('base64')}`,
    PORT: String(port), HOST: '127.0.0.1', NATS_URL: '', REDIS_URL: '', LOG_LEVEL: 'warn', ...extra,
  };
}

/** One request over https (trusting only the test certificate) or http; the answer's status, headers and body. */
function request(url: string, options: https.RequestOptions & { body?: string } = {}): Promise<Answer> {
  const { body, ...rest } = options;
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { ca, agent: false, ...rest }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, protocol: (res.socket as tls.TLSSocket).getProtocol?.() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function started(proc: ManagedProcess, url: string) {
  return until(`the api at ${url}`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`api exited: ${proc.output()}`);
    return (await request(`${url}/healthz`).then((r) => r.status === 200, () => false)) || undefined;
  }, 30_000, 100);
}

const corsHeaders = (headers: http.IncomingHttpHeaders) => Object.keys(headers).filter((k) => k.startsWith('access-control-'));

beforeAll(async () => {
  h = await createHarness();
  dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-tls-'));
  cert = await ensureDevCertificate({ dir });
  ca = readFileSync(cert.certPath);
  ports = { tls: await freePort(), redirect: await freePort(), plain: await freePort() };
  const secure = startNodeProcess('api/server.ts', apiEnv(ports.tls, {
    TLS_CERT: cert.certPath, TLS_KEY: cert.keyPath, HTTP_REDIRECT_PORT: String(ports.redirect), CORS_ORIGINS: `${SHOP}, https://admin.shop.example`,
  }));
  const plain = startNodeProcess('api/server.ts', apiEnv(ports.plain, {}));
  await Promise.all([started(secure, `https://127.0.0.1:${ports.tls}`), started(plain, `http://127.0.0.1:${ports.plain}`)]);
}, 60_000);

afterAll(async () => {
  await killAll();
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('development certificate', () => {
  it('is made once for localhost and 127.0.0.1, key readable by its owner only, and reused afterwards', async () => {
    expect(cert.created).toBe(true);
    const x509 = new X509Certificate(ca);
    expect(x509.subjectAltName).toContain('DNS:localhost');
    expect(x509.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(statSync(cert.keyPath).mode & 0o077).toBe(0);
    expect(await ensureDevCertificate({ dir })).toEqual({ ...cert, created: false });
  });

  it('names the missing openssl command instead of failing obscurely', async () => {
    const other = await mkdtemp(path.join(os.tmpdir(), 'stockwire-tls-none-'));
    try {
      await expect(ensureDevCertificate({ dir: other, openssl: 'openssl-not-installed-here' })).rejects.toThrow(/openssl command, which is not on PATH/);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('HTTPS', () => {
  it('answers over TLS with the certificate, sending HSTS', async () => {
    const res = await request(`https://127.0.0.1:${ports.tls}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers['strict-transport-security']).toBe(HSTS_HEADER);
    expect(['TLSv1.2', 'TLSv1.3']).toContain(res.protocol);
    // the certificate also verifies for the name localhost
    expect((await request(`https://127.0.0.1:${ports.tls}/healthz`, { servername: 'localhost' })).status).toBe(200);
  });

  it('accepts TLS 1.2 and refuses TLS 1.1 and 1.0 with a protocol-version alert', async () => {
    const handshake = (version: tls.SecureVersion) => new Promise<string | null>((resolve, reject) => {
      // SECLEVEL=0 lets this client offer the old protocols, so it is the server that refuses them
      const socket = tls.connect({ host: '127.0.0.1', port: ports.tls, ca, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
        resolve(socket.getProtocol());
        socket.end();
      });
      socket.on('error', reject);
    });
    expect(await handshake('TLSv1.2')).toBe('TLSv1.2');
    await expect(handshake('TLSv1.1')).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    await expect(handshake('TLSv1')).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  });

  it('does not speak plain HTTP on the TLS port', async () => {
    await expect(request(`http://127.0.0.1:${ports.tls}/healthz`)).rejects.toThrow();
  });

  it('redirects the plain-HTTP port with 308 to the same host, path and query over https, echoing no body', async () => {
    const res = await request(`http://127.0.0.1:${ports.redirect}/v1/stock/TOWEL/MAIN?min_lsn=0%2F1&x=y`);
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe(`https://127.0.0.1:${ports.tls}/v1/stock/TOWEL/MAIN?min_lsn=0%2F1&x=y`);
    expect(res.headers['strict-transport-security']).toBeUndefined();
    const posted = await request(`http://127.0.0.1:${ports.redirect}/v1/orders`, {
      method: 'POST', headers: { host: 'localhost', 'content-type': 'application/json' }, body: '{"secret":"do-not-echo"}',
    });
    expect(posted.status).toBe(308);
    expect(posted.headers.location).toBe(`https://localhost:${ports.tls}/v1/orders`);
    expect(posted.body).toBe('');
    // a Host header that smuggles a path or credentials is refused, not turned into a redirect
    const smuggled = await request(`http://127.0.0.1:${ports.redirect}/x`, { headers: { host: 'evil.example/@127.0.0.1' } });
    expect(smuggled.status).toBe(400);
    expect(smuggled.headers.location).toBeUndefined();
    // the redirect leads somewhere that works
    expect((await request(res.headers.location!.replace('/v1/stock/TOWEL/MAIN?min_lsn=0%2F1&x=y', '/healthz'))).status).toBe(200);
  });

  it('sends no HSTS over plain HTTP', async () => {
    const res = await request(`http://127.0.0.1:${ports.plain}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('stops at start-up with a message naming the variable when the key or certificate is wrong', async () => {
    const other = await mkdtemp(path.join(os.tmpdir(), 'stockwire-tls-other-'));
    try {
      const second = await ensureDevCertificate({ dir: other });
      expect(() => loadTlsOptions({ TLS_CERT: cert.certPath, TLS_KEY: second.keyPath })).toThrow(/TLS_KEY=.* does not belong to the certificate in TLS_CERT/);
      expect(() => loadTlsOptions({ TLS_CERT: path.join(other, 'missing.pem'), TLS_KEY: second.keyPath })).toThrow(/TLS_CERT=.*missing\.pem: cannot read the file \(ENOENT\)/);
      expect(() => loadTlsOptions({ TLS_CERT: second.keyPath, TLS_KEY: second.keyPath })).toThrow(/TLS_CERT=.*: not a PEM certificate/);
      expect(() => loadTlsOptions({ TLS_CERT: cert.certPath })).toThrow(/set both TLS_CERT and TLS_KEY/);
      expect(() => loadTlsOptions({ HTTP_REDIRECT_PORT: 8081 })).toThrow(/HTTP_REDIRECT_PORT redirects to HTTPS/);
      expect(loadTlsOptions({})).toBeUndefined();
      const proc = startNodeProcess('api/server.ts', apiEnv(await freePort(), { TLS_CERT: cert.certPath, TLS_KEY: second.keyPath }));
      expect(await proc.exited).toBe(2);
      expect(proc.output()).toMatch(/stockwire api: TLS_KEY=.* does not belong/);
      expect(proc.output()).not.toMatch(/\n\s+at /);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('CORS', () => {
  const preflight = (port: number, origin: string, scheme = 'https') => request(`${scheme}://127.0.0.1:${port}/v1/orders`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, idempotency-key' },
  });

  it('answers a preflight from a configured origin: that origin, the API headers, no credentials, max-age 600', async () => {
    const res = await preflight(ports.tls, SHOP);
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(SHOP);
    expect(res.headers['access-control-allow-headers']!.toLowerCase().split(',')).toEqual(['authorization', 'content-type', 'idempotency-key', 'x-api-key']);
    expect(res.headers['access-control-allow-methods']).toContain('POST');
    expect(res.headers['access-control-max-age']).toBe('600');
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers.vary).toContain('Origin');
    const second = await preflight(ports.tls, 'https://admin.shop.example');
    expect(second.headers['access-control-allow-origin']).toBe('https://admin.shop.example');
  });

  it('gives a preflight from any other origin no CORS header at all', async () => {
    for (const origin of ['https://evil.example', 'https://shop.example.evil.example', 'http://shop.example', 'null']) {
      const res = await preflight(ports.tls, origin);
      expect(corsHeaders(res.headers)).toEqual([]);
      expect(res.status).not.toBe(204);
    }
  });

  it('marks a simple cross-origin response for the configured origin only', async () => {
    const allowed = await request(`https://127.0.0.1:${ports.tls}/healthz`, { headers: { origin: SHOP } });
    expect(allowed.headers['access-control-allow-origin']).toBe(SHOP);
    const other = await request(`https://127.0.0.1:${ports.tls}/healthz`, { headers: { origin: 'https://evil.example' } });
    expect(corsHeaders(other.headers)).toEqual([]);
    expect(other.headers.vary).toContain('Origin');
  });

  it('is off without CORS_ORIGINS: not even the shop gets a CORS header', async () => {
    const res = await preflight(ports.plain, SHOP, 'http');
    expect(corsHeaders(res.headers)).toEqual([]);
    const get = await request(`http://127.0.0.1:${ports.plain}/healthz`, { headers: { origin: SHOP } });
    expect(corsHeaders(get.headers)).toEqual([]);
  });
});
