/** Prometheus metrics shared by every projector process. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createProjectorMetrics(registry = new Registry()) {
  return {
    registry,
    eventsApplied: new Counter({ name: 'stockwire_projector_events_applied_total', help: 'Change events applied', labelNames: ['projector'], registers: [registry] }),
    deadLetters: new Counter({ name: 'stockwire_projector_dead_letters_total', help: 'Messages sent to the dead-letter subject', labelNames: ['projector'], registers: [registry] }),
    appliedSeq: new Gauge({ name: 'stockwire_projector_applied_stream_sequence', help: 'Stream sequence of the last applied message', labelNames: ['projector'], registers: [registry] }),
    lag: new Histogram({
      name: 'stockwire_projector_lag_seconds', help: 'Commit in Postgres → applied by the projector', labelNames: ['projector'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
    }),
  };
}

export type ProjectorMetrics = ReturnType<typeof createProjectorMetrics>;
