/**
 * Optional early reads for the Google Sheets mirror: a Drive push-notification channel on the
 * spreadsheet file (`files.watch`, type web_hook), so an edit is read within a second or two instead of
 * on the next poll. Drive POSTs to GOOGLE_PUSH_ADDRESS (a public HTTPS URL your proxy forwards to
 * GOOGLE_PUSH_PORT); each notification carries the channel token we chose, which is checked before
 * anything happens. Channels on files live at most a day, so the channel is renewed before it expires
 * and the old one stopped. The poll keeps running underneath: a lost notification only delays a read.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OAuth2Client } from 'google-auth-library';
import type { Logger } from 'pino';
import type { SheetTarget } from '../sheet-sync/sheet-target.ts';

export interface DrivePushProps {
  auth: OAuth2Client;
  fileId: string;
  /** public HTTPS address Drive posts to */
  address: string;
  /** port (and host) the receiver listens on behind the proxy */
  port: number;
  host?: string;
  /** shared secret sent back in X-Goog-Channel-Token */
  token: string;
  /** Drive API root (tests point it at a local fake) */
  driveRootUrl?: string;
  /** channel lifetime asked for (Drive caps file channels at one day) */
  ttlMs?: number;
  /** renew no sooner than this, and retry a failed renewal after it (default one minute) */
  minRenewMs?: number;
  log?: Logger;
}

interface Channel { id: string; resourceId: string; expiresAt: number }

function sameToken(given: string | undefined, expected: string): boolean {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Receives Drive notifications; calls onChange for every change notice carrying our token. */
export async function startPushReceiver(props: { port: number; host?: string; token: string; onChange: () => void; log?: Logger | undefined }) {
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.method !== 'POST' || !sameToken(req.headers['x-goog-channel-token'] as string | undefined, props.token)) {
      res.writeHead(403).end();
      return;
    }
    const state = req.headers['x-goog-resource-state'];
    // "sync" only confirms a new channel; every other state means the file may have changed
    if (state !== 'sync') props.onChange();
    res.writeHead(200).end();
  });
  await new Promise<void>((resolve) => server.listen(props.port, props.host ?? '0.0.0.0', resolve));
  props.log?.info({ port: (server.address() as AddressInfo).port }, 'drive push receiver listening');
  return {
    port: () => (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Opens a watch channel on the file and keeps it renewed; returns a function that stops it. */
export async function watchDriveFile(props: DrivePushProps): Promise<() => Promise<void>> {
  const root = (props.driveRootUrl ?? 'https://www.googleapis.com/').replace(/\/?$/, '/');
  const ttlMs = props.ttlMs ?? 86_400_000;
  const minRenewMs = props.minRenewMs ?? 60_000;
  let channel: Channel | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function stopChannel(c: Channel) {
    await props.auth.request({ url: `${root}drive/v3/channels/stop`, method: 'POST', data: { id: c.id, resourceId: c.resourceId } })
      .catch((err: Error) => props.log?.warn({ err: { message: err.message } }, 'could not stop the old drive channel'));
  }

  async function open(): Promise<void> {
    const id = randomUUID();
    const res = await props.auth.request<{ resourceId: string; expiration?: string }>({
      url: `${root}drive/v3/files/${encodeURIComponent(props.fileId)}/watch`,
      method: 'POST',
      data: { id, type: 'web_hook', address: props.address, token: props.token, expiration: Date.now() + ttlMs },
    });
    const previous = channel;
    channel = { id, resourceId: res.data.resourceId, expiresAt: Number(res.data.expiration ?? Date.now() + ttlMs) };
    if (previous) await stopChannel(previous);
    props.log?.info({ channel: id, expiresAt: new Date(channel.expiresAt).toISOString() }, 'drive push channel open');
    // renew at 90 % of the lifetime Drive granted; on failure try again a little later
    const renewIn = Math.max(minRenewMs, (channel.expiresAt - Date.now()) * 0.9);
    timer = setTimeout(() => void renew(), renewIn);
  }

  async function renew() {
    if (stopped) return;
    await open().catch((err: Error) => {
      props.log?.warn({ err: { message: err.message } }, 'drive push channel renewal failed; retrying in a minute');
      timer = setTimeout(() => void renew(), minRenewMs);
    });
  }

  await open();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    if (channel) await stopChannel(channel);
  };
}

/** The target with watch(): push notifications from Drive trigger early reads. */
export function withDrivePush(target: SheetTarget, props: DrivePushProps): SheetTarget {
  const closers: (() => Promise<void>)[] = [];
  return {
    kind: target.kind,
    readBeforeWrite: target.readBeforeWrite,
    ensureLayout: (tabs) => target.ensureLayout(tabs),
    read: (tabs) => target.read(tabs),
    write: (ranges, notes) => target.write(ranges, notes),
    watch(onChange) {
      void (async () => {
        const receiver = await startPushReceiver({ port: props.port, host: props.host, token: props.token, onChange, log: props.log });
        closers.push(receiver.close);
        closers.push(await watchDriveFile(props));
      })().catch((err: Error) => props.log?.error({ err: { message: err.message } }, 'drive push notifications unavailable; polling only'));
      return () => void Promise.all(closers.splice(0).map((close) => close().catch(() => {})));
    },
    async close() {
      await Promise.all(closers.splice(0).map((close) => close().catch(() => {})));
      await target.close();
    },
  };
}
