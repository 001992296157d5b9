/**
 * Slack channel: an incoming webhook (@slack/webhook) posting a Block Kit message per alert — header,
 * the facts as fields, and for low stock a reorder suggestion. Slack has no de-duplication of its own,
 * so the delivery id goes into the message's metadata and the fallback text. The client's error does
 * not carry response headers, so a wrapping fetch keeps Retry-After for 429s.
 */
import { IncomingWebhook, IncomingWebhookHTTPError } from '@slack/webhook';
import { detailsOf, summaryOf, type Notice } from '../alert-rules.ts';
import { ChannelError, httpFailure, type Channel } from './log.ts';

const TITLES: Record<string, string> = {
  'low-stock:trigger': ':warning: Low stock',
  'low-stock:resolve': ':white_check_mark: Stock recovered',
  'expiring:trigger': ':hourglass: Lot expiring soon',
  'expired:trigger': ':x: Expired stock on hand',
};

/** The incoming-webhook payload for one alert. */
export function slackMessage(notice: Notice, deliveryId: string) {
  const fields = detailsOf(notice).map(([label, value]) => ({ type: 'mrkdwn' as const, text: `*${label}*\n${value}` }));
  const blocks: any[] = [
    { type: 'header', text: { type: 'plain_text', text: TITLES[`${notice.kind}:${notice.action}`] ?? notice.kind } },
    { type: 'section', text: { type: 'mrkdwn', text: summaryOf(notice) } },
    { type: 'section', fields: fields.slice(0, 10) },
  ];
  if (notice.kind === 'low-stock' && notice.action === 'trigger') {
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Suggested reorder: *${notice.suggestion}* of ${notice.sku} for ${notice.location}` }] });
  }
  return {
    text: summaryOf(notice),
    blocks,
    metadata: { event_type: `stockwire_${notice.kind.replace('-', '_')}`, event_payload: { dedup_key: notice.dedupKey, delivery_id: deliveryId, action: notice.action } },
  };
}

export function createSlackChannel(props: { webhookUrl: string; timeoutMs?: number }): Channel {
  return {
    name: 'slack',
    async send(notice, deliveryId) {
      let retryAfter: string | null = null;
      const webhook = new IncomingWebhook(props.webhookUrl, {
        timeout: props.timeoutMs ?? 10_000,
        fetch: async (url, init) => {
          const res = await fetch(url, init as RequestInit);
          retryAfter = res.headers.get('retry-after');
          return res;
        },
      });
      try {
        await webhook.send(slackMessage(notice, deliveryId));
      } catch (err) {
        if (err instanceof IncomingWebhookHTTPError) throw httpFailure('slack', err.statusCode, err.body, retryAfter);
        throw new ChannelError('slack', `webhook request failed: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}
