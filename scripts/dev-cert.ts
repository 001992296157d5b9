/**
 * A self-signed development certificate for `TLS_SELF_SIGNED=true npm start` (or `npm start -- --tls`):
 * an ECDSA P-256 key and a one-year certificate for localhost and 127.0.0.1, made once by the openssl
 * CLI into DIR/cert.pem and DIR/key.pem (mode 0600) and reused afterwards. Never for production.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class DevCertError extends Error {
  readonly code = 'dev_cert';
}

export interface DevCertificate {
  certPath: string;
  keyPath: string;
  /** false when an earlier run's files were reused */
  created: boolean;
}

/** Returns DIR/cert.pem and DIR/key.pem, creating them with openssl when either is missing. */
export async function ensureDevCertificate(props: { dir: string; openssl?: string }): Promise<DevCertificate> {
  const certPath = path.join(props.dir, 'cert.pem');
  const keyPath = path.join(props.dir, 'key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) return { certPath, keyPath, created: false };
  await mkdir(props.dir, { recursive: true, mode: 0o700 });
  // written under temporary names and renamed, so an interrupted run never leaves half a pair behind
  const tmpCert = `${certPath}.${process.pid}.tmp`;
  const tmpKey = `${keyPath}.${process.pid}.tmp`;
  try {
    await run(props.openssl ?? 'openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', tmpKey, '-out', tmpCert,
    ]);
    await chmod(tmpKey, 0o600);
    await rename(tmpKey, keyPath);
    await rename(tmpCert, certPath);
  } catch (err) {
    await rm(tmpCert, { force: true });
    await rm(tmpKey, { force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new DevCertError('TLS_SELF_SIGNED needs the openssl command, which is not on PATH: install OpenSSL, or set TLS_CERT and TLS_KEY to your own PEM files', { cause: err });
    }
    throw new DevCertError(`openssl could not create the development certificate in ${props.dir}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
  return { certPath, keyPath, created: true };
}

/**
 * A file for NODE_EXTRA_CA_CERTS that makes child processes trust the development certificate: the
 * certificate itself, or DIR/extra-ca.pem holding the bundle already named there plus the certificate
 * (the variable takes one file, and the machine's own bundle must keep working).
 */
export async function extraCaFile(props: { cert: DevCertificate; existing?: string | undefined }): Promise<string> {
  if (!props.existing) return props.cert.certPath;
  const existing = await readFile(props.existing, 'utf8').catch(() => '');
  if (!existing) return props.cert.certPath;
  const bundle = path.join(path.dirname(props.cert.certPath), 'extra-ca.pem');
  await writeFile(bundle, `${existing.trimEnd()}\n${await readFile(props.cert.certPath, 'utf8')}`);
  return bundle;
}
