/**
 * PagerDuty channel: Events API v2. Low stock is one alert per (sku, location), dedup_key
 * `stockwire:low:<sku>:<location>`: `trigger` when it turns low, `resolve` with the same key when it
 * recovers; expiry alerts carry a per-lot key. PagerDuty de-duplicates triggers on an open alert by
 * dedup_key, so a repeated send after a crash changes nothing there.
 */
import { detailsOf, summaryOf, type Notice } from '../alert-rules.ts';
import { ChannelError, httpFailure, type Channel } from './log.ts';

export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

/** The Events v2 body for one alert. */
export function pagerDutyEvent(notice: Notice, routingKey: string, source: string) {
  if (notice.action === 'resolve') return { routing_key: routingKey, event_action: 'resolve', dedup_key: notice.dedupKey };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: notice.dedupKey,
    payload: {
      summary: summaryOf(notice).slice(0, 1024),
      source,
      severity: 'warning',
      timestamp: notice.at,
      component: notice.location,
      group: 'stockwire-inventory',
      class: notice.kind,
      custom_details: Object.fromEntries(detailsOf(notice)),
    },
  };
}

export function createPagerDutyChannel(props: { routingKey: string; eventsUrl?: string; source?: string; timeoutMs?: number }): Channel {
  const url = props.eventsUrl ?? PAGERDUTY_EVENTS_URL;
  return {
    name: 'pagerduty',
    async send(notice) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(pagerDutyEvent(notice, props.routingKey, props.source ?? 'stockwire')),
          signal: AbortSignal.timeout(props.timeoutMs ?? 10_000),
        });
      } catch (err) {
        throw new ChannelError('pagerduty', `request failed: ${(err as Error).message}`, { cause: err });
      }
      const body = await res.text().catch(() => '');
      if (res.status !== 202 && !res.ok) throw httpFailure('pagerduty', res.status, body, res.headers.get('retry-after'));
    },
  };
}
