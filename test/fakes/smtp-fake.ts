/**
 * An SMTP server for tests (smtp-server): plain SMTP on a free loopback port, no STARTTLS, AUTH PLAIN /
 * LOGIN accepted for one user over the plain connection. Every accepted message is kept raw with its
 * envelope and its Subject header (unfolded, encoded words decoded).
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  raw: string;
  at: number;
}

/** Decodes RFC 2047 encoded words (=?utf-8?Q?…?= / =?utf-8?B?…?=), joining adjacent ones. */
export function decodeHeader(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_, _charset: string, enc: string, text: string) => {
      if (enc.toUpperCase() === 'B') return Buffer.from(text, 'base64').toString('utf8');
      return decodeURIComponent(text.replace(/%/g, '%25').replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, '%$1'));
    });
}

export async function startSmtpFake(props: { user?: string; pass?: string } = {}) {
  const user = props.user ?? 'alerts';
  const pass = props.pass ?? 'secret';
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: false,
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === user && auth.password === pass) cb(null, { user });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
        const subject = decodeHeader(/^subject:\s*(.*)$/im.exec(head)?.[1] ?? '');
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        mails.push({ from, to: session.envelope.rcptTo.map((r) => r.address), subject, raw, at: Date.now() });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://${user}:${pass}@127.0.0.1:${port}`,
    mails,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export type SmtpFake = Awaited<ReturnType<typeof startSmtpFake>>;
