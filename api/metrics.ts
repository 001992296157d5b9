/** Prometheus metrics of the API process. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createApiMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry, prefix: 'stockwire_api_' });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'stockwire_http_request_duration_seconds', help: 'HTTP request duration by route and status',
      labelNames: ['method', 'route', 'status'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry],
    }),
    reservations: new Counter({
      name: 'stockwire_reservations_total', help: 'Order placements by outcome (reserved, insufficient_stock, replayed, refused)',
      labelNames: ['outcome'], registers: [registry],
    }),
    expired: new Counter({ name: 'stockwire_reservations_expired_total', help: 'Reservations released by the expiry sweeper', registers: [registry] }),
    sweeps: new Counter({ name: 'stockwire_maintenance_runs_total', help: 'Maintenance ticks run by the leader (sweeper, audit sealer)', registers: [registry] }),
  };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
