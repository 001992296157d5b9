/**
 * HTTPS for the API process: the certificate and key from TLS_CERT / TLS_KEY (PEM files), checked at
 * start-up so a wrong path or a key that does not belong to the certificate stops the process with a
 * message naming the variable; TLS 1.2 is the oldest protocol offered. HTTP_REDIRECT_PORT adds a plain
 * listener that only ever answers 308 to the same host, path and query over https (no body is read or
 * echoed), so nothing of the API is reachable without TLS.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { SecureContextOptions, TlsOptions } from 'node:tls';

/** Sent on HTTPS responses only (browsers ignore it over plain HTTP, and it must not promise what HTTP cannot keep). */
export const HSTS_HEADER = 'max-age=31536000; includeSubDomains';

export class TlsSetupError extends Error {
  readonly code = 'tls_setup';
}

export interface TlsSettings {
  TLS_CERT?: string | undefined;
  TLS_KEY?: string | undefined;
  HTTP_REDIRECT_PORT?: number | undefined;
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsSetupError(`${variable}=${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

/** The https server options for TLS_CERT/TLS_KEY, or undefined when neither is set (plain HTTP). */
export function loadTlsOptions(settings: TlsSettings): (TlsOptions & SecureContextOptions) | undefined {
  if (!settings.TLS_CERT && !settings.TLS_KEY) {
    if (settings.HTTP_REDIRECT_PORT) throw new TlsSetupError('HTTP_REDIRECT_PORT redirects to HTTPS: set TLS_CERT and TLS_KEY too, or unset it');
    return undefined;
  }
  if (!settings.TLS_CERT || !settings.TLS_KEY) {
    throw new TlsSetupError(`set both TLS_CERT and TLS_KEY (PEM files); only ${settings.TLS_CERT ? 'TLS_CERT' : 'TLS_KEY'} is set`);
  }
  const cert = readPem('TLS_CERT', settings.TLS_CERT);
  const key = readPem('TLS_KEY', settings.TLS_KEY);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsSetupError(`TLS_CERT=${settings.TLS_CERT}: not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsSetupError(`TLS_KEY=${settings.TLS_KEY}: not an unencrypted PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsSetupError(`TLS_KEY=${settings.TLS_KEY} does not belong to the certificate in TLS_CERT=${settings.TLS_CERT}`);
  }
  if (Date.parse(x509.validTo) < Date.now()) {
    throw new TlsSetupError(`TLS_CERT=${settings.TLS_CERT} expired on ${x509.validTo}: renew it`);
  }
  return { cert, key, minVersion: 'TLSv1.2' };
}

/** The https URL a plain request is redirected to, or undefined when its Host header is not a usable host. */
export function redirectTarget(hostHeader: string | undefined, requestTarget: string | undefined, httpsPort: number): string | undefined {
  if (!hostHeader) return undefined;
  let hostname: string;
  try {
    const parsed = new URL(`http://${hostHeader}`);
    // anything beyond host[:port] (userinfo, a path) would let the header pick a different destination
    if (parsed.username || parsed.password || parsed.pathname !== '/' || parsed.search || parsed.hash) return undefined;
    hostname = parsed.hostname;
  } catch {
    return undefined;
  }
  let pathAndQuery = requestTarget ?? '/';
  if (!pathAndQuery.startsWith('/')) {
    try {
      const absolute = new URL(pathAndQuery); // absolute-form request target
      pathAndQuery = `${absolute.pathname}${absolute.search}`;
    } catch {
      pathAndQuery = '/';
    }
  }
  return `https://${hostname}${httpsPort === 443 ? '' : `:${httpsPort}`}${pathAndQuery}`;
}

/** A plain-HTTP server that answers every request with 308 to its https URL on `httpsPort`. */
export function createRedirectServer(props: { httpsPort: number }): http.Server {
  return http.createServer((req, res) => {
    const location = redirectTarget(req.headers.host, req.url, props.httpsPort);
    // the body (if any) is never read: the connection closes after this answer
    res.setHeader('connection', 'close');
    if (!location) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('this port only redirects to HTTPS; send a Host header\n');
      return;
    }
    res.writeHead(308, { location, 'content-length': '0' }).end();
  });
}
