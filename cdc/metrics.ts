/** Prometheus metrics of the cdc process. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createCdcMetrics(registry = new Registry()) {
  return {
    registry,
    eventsPublished: new Counter({ name: 'stockwire_cdc_events_published_total', help: 'Change events handed to JetStream', labelNames: ['table', 'op'], registers: [registry] }),
    publishLatency: new Histogram({
      name: 'stockwire_cdc_publish_latency_seconds', help: 'Time from publish to JetStream acknowledgement',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
    }),
    lagBytes: new Gauge({ name: 'stockwire_cdc_slot_lag_bytes', help: 'WAL bytes between the server position and the slot\'s confirmed position', registers: [registry] }),
    lagSeconds: new Gauge({ name: 'stockwire_cdc_slot_lag_seconds', help: 'Age of the oldest transaction not yet acknowledged by JetStream', registers: [registry] }),
    active: new Gauge({ name: 'stockwire_cdc_active', help: '1 while this process is the active reader, 0 while it waits as a standby', registers: [registry] }),
  };
}

export type CdcMetrics = ReturnType<typeof createCdcMetrics>;
