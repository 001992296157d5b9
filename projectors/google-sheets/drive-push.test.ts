/**
 * Drive push notifications through the real auth client: the watch channel is opened against a local
 * fake of the Drive endpoints and renewed (the old channel stopped); the receiver calls back only for
 * notifications carrying our channel token, and not for the "sync" confirmation.
 */
import { OAuth2Client } from 'google-auth-library';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startPushReceiver, watchDriveFile } from './drive-push.ts';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The two Drive endpoints a watch uses, recording what arrives. */
async function startDriveFake() {
  const calls: { path: string; body: any; auth: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      const body = text ? JSON.parse(text) : undefined;
      calls.push({ path: req.url!, body, auth: req.headers.authorization });
      res.setHeader('content-type', 'application/json');
      if (/^\/drive\/v3\/files\/[^/]+\/watch$/.test(req.url!)) {
        res.end(JSON.stringify({ kind: 'api#channel', id: body.id, resourceId: `res-${body.id}`, expiration: String(body.expiration) }));
      } else if (req.url === '/drive/v3/channels/stop') {
        res.writeHead(204).end();
      } else {
        res.writeHead(404).end(JSON.stringify({ error: { code: 404, message: 'not found' } }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, calls };
}

async function until(check: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function notify(port: number, headers: Record<string, string>) {
  return fetch(`http://127.0.0.1:${port}/drive-push`, { method: 'POST', headers: { 'x-goog-channel-id': 'c1', 'x-goog-message-number': '2', ...headers } });
}

describe('drive push notifications', () => {
  it('opens a web_hook channel on the file with our token, as the authenticated client', async () => {
    const drive = await startDriveFake();
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: 'drive-token', expiry_date: Date.now() + 3600_000 });
    const stop = await watchDriveFile({ auth, fileId: 'sheet-1', address: 'https://sync.example.com/drive-push', port: 0, token: 'x'.repeat(32), driveRootUrl: drive.url, ttlMs: 3600_000 });
    expect(drive.calls[0]).toMatchObject({
      path: '/drive/v3/files/sheet-1/watch', auth: 'Bearer drive-token',
      body: { type: 'web_hook', address: 'https://sync.example.com/drive-push', token: 'x'.repeat(32) },
    });
    await stop();
    expect(drive.calls[1]).toMatchObject({ path: '/drive/v3/channels/stop', body: { id: drive.calls[0]!.body.id, resourceId: `res-${drive.calls[0]!.body.id}` } });
  });

  it('renews the channel before it expires and stops the old one', async () => {
    const drive = await startDriveFake();
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: 'drive-token', expiry_date: Date.now() + 3600_000 });
    const stop = await watchDriveFile({
      auth, fileId: 'sheet-1', address: 'https://sync.example.com/p', port: 0, token: 't'.repeat(32), driveRootUrl: drive.url, ttlMs: 200, minRenewMs: 50,
    });
    await until(() => drive.calls.filter((c) => c.path.endsWith('/watch')).length >= 2);
    await stop();
    const watches = drive.calls.filter((c) => c.path.endsWith('/watch'));
    const stops = drive.calls.filter((c) => c.path === '/drive/v3/channels/stop');
    expect(stops[0]!.body.id).toBe(watches[0]!.body.id);
    expect(watches[1]!.body.id).not.toBe(watches[0]!.body.id);
  });

  it('calls back for change notices with our token only', async () => {
    let changes = 0;
    const receiver = await startPushReceiver({ port: 0, host: '127.0.0.1', token: 's'.repeat(32), onChange: () => void changes++ });
    closers.push(receiver.close);
    expect((await notify(receiver.port(), { 'x-goog-channel-token': 's'.repeat(32), 'x-goog-resource-state': 'sync' })).status).toBe(200);
    expect(changes).toBe(0);
    expect((await notify(receiver.port(), { 'x-goog-channel-token': 'wrong'.padEnd(32, '!'), 'x-goog-resource-state': 'update' })).status).toBe(403);
    expect((await notify(receiver.port(), { 'x-goog-resource-state': 'update' })).status).toBe(403);
    expect(changes).toBe(0);
    expect((await notify(receiver.port(), { 'x-goog-channel-token': 's'.repeat(32), 'x-goog-resource-state': 'update' })).status).toBe(200);
    expect(changes).toBe(1);
  });
});
