/**
 * The operations files agree with the code: every metric that an alert rule or a dashboard panel queries
 * is exported by one of the three registries (api, cdc, projectors) under that exact series name, every
 * label a selector matches on is one the metric has, every alert links a runbook heading that exists, and
 * the scrape config loads the rules and scrapes the ports the processes listen on by default.
 * Pure: builds the registries in memory, needs no service.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createApiMetrics } from '../api/metrics.ts';
import { apiConfigSchema } from '../api/config.ts';
import { cdcConfigSchema } from '../cdc/config.ts';
import { createCdcMetrics } from '../cdc/metrics.ts';
import { createProjectorMetrics } from '../projectors/runtime/metrics.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const ALERTS_FILE = path.join(ROOT, 'ops/prometheus/alerts.yml');
const PROMETHEUS_FILE = path.join(ROOT, 'ops/prometheus/prometheus.yml');
const DASHBOARD_FILE = path.join(ROOT, 'ops/grafana/stockwire.json');
const RUNBOOK_FILE = path.join(ROOT, 'docs/runbook.md');

/** Labels Prometheus adds to every scraped series (target labels of prometheus.yml included). */
const TARGET_LABELS = ['job', 'instance', 'service'];
const SEVERITIES = ['page', 'ticket', 'info'];
const METRIC_NAME = /(?<![A-Za-z0-9_:])stockwire_[a-z0-9_]+/g;

// ---- what the code exports -------------------------------------------------------------------------

interface ExportedSeries {
  /** the metric as declared (histogram base name) */
  metric: string;
  type: string;
  labels: string[];
}

/**
 * Every series name the registries expose, read from the text format prom-client prints (`# TYPE` lines,
 * so labelled metrics count before their first observation): counters and gauges under their own name
 * (prom-client 15 appends no `_total`), histograms as NAME_bucket / NAME_sum / NAME_count.
 */
async function exportedSeries(registries: Registry[]): Promise<Map<string, ExportedSeries>> {
  const series = new Map<string, ExportedSeries>();
  for (const registry of registries) {
    const text = await registry.metrics();
    for (const [, metric, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const declared = registry.getSingleMetric(metric!) as unknown as { labelNames?: string[] } | undefined;
      const labels = [...(declared?.labelNames ?? [])];
      const names = type === 'histogram' ? [`${metric}_bucket`, `${metric}_sum`, `${metric}_count`]
        : type === 'summary' ? [metric!, `${metric}_sum`, `${metric}_count`]
        : [metric!];
      for (const name of names) {
        if (series.has(name)) throw new Error(`${name} is exported by two registries`);
        series.set(name, { metric: metric!, type: type!, labels: name.endsWith('_bucket') ? [...labels, 'le'] : type === 'summary' && name === metric ? [...labels, 'quantile'] : labels });
      }
    }
  }
  return series;
}

const api = createApiMetrics();
const cdc = createCdcMetrics();
const projectors = createProjectorMetrics();
const exported = await exportedSeries([api.registry, cdc.registry, projectors.registry]);

/** Metrics the application declares itself (not prom-client's default process metrics). */
const APPLICATION_METRICS = [...new Set([...exported.values()].map((s) => s.metric))]
  .filter((m) => !m.startsWith('stockwire_api_process_') && !m.startsWith('stockwire_api_nodejs_'));

// ---- what the ops files reference ------------------------------------------------------------------

/** stockwire_* identifiers in a PromQL expression. */
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(METRIC_NAME) ?? [])];
}

/** Names in `exprs` that no registry exports, each with the expression it came from. */
function unknownMetrics(exprs: string[]): string[] {
  return exprs.flatMap((expr) => metricNames(expr).filter((n) => !exported.has(n)).map((n) => `${n} in: ${expr.trim()}`));
}

/** Label names matched in `metric{label="…",…}` selectors that the metric does not carry. */
function unknownSelectorLabels(exprs: string[]): string[] {
  const problems: string[] = [];
  for (const expr of exprs) {
    for (const [, name, body] of expr.matchAll(/(?<![A-Za-z0-9_:])(stockwire_[a-z0-9_]+)\s*\{([^}]*)\}/g)) {
      const known = exported.get(name!);
      if (!known) continue; // reported by unknownMetrics
      for (const [, label] of body!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
        if (!known.labels.includes(label!) && !TARGET_LABELS.includes(label!)) problems.push(`${name} has no label ${label} (has ${known.labels.join(', ') || 'none'})`);
      }
    }
  }
  return problems;
}

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const alertsText = await readFile(ALERTS_FILE, 'utf8');
const alertsDoc = parseYaml(alertsText) as { groups: { name: string; rules: AlertRule[] }[] };
const rules = alertsDoc.groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert !== undefined);
const ruleExprs = rules.map((r) => String(r.expr));

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(await readFile(DASHBOARD_FILE, 'utf8')) as {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query?: string | { query?: string } }[] };
};
/** Top-level panels and those nested in collapsed rows. */
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const panelExprs = allPanels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
const variableExprs = dashboard.templating.list
  .map((v) => (typeof v.query === 'string' ? v.query : v.query?.query ?? ''))
  .filter((q) => q.includes('stockwire_'));
const dashboardExprs = [...panelExprs, ...variableExprs];

const prometheus = parseYaml(await readFile(PROMETHEUS_FILE, 'utf8')) as {
  rule_files: string[];
  scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
};

const runbook = await readFile(RUNBOOK_FILE, 'utf8');

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}
const runbookAnchors = new Set(
  runbook.split('\n').filter((line) => /^#{1,6} /.test(line)).map((line) => slug(line.replace(/^#+ /, ''))),
);

// ---- the checks ------------------------------------------------------------------------------------

describe('the metric-name check itself', () => {
  it('reads series names from the registries, with the suffixes Prometheus sees', () => {
    expect(exported.get('stockwire_reservations_total')).toMatchObject({ type: 'counter', labels: ['outcome'] });
    expect(exported.get('stockwire_projector_lag_seconds_bucket')).toMatchObject({ type: 'histogram', labels: ['projector', 'le'] });
    expect(exported.has('stockwire_projector_lag_seconds_count')).toBe(true);
    expect(exported.has('stockwire_cdc_slot_lag_bytes')).toBe(true);
    expect(exported.has('stockwire_api_process_resident_memory_bytes')).toBe(true);
    // a histogram's own name is not a series, and a counter has no _bucket
    expect(exported.has('stockwire_projector_lag_seconds')).toBe(false);
    expect(exported.has('stockwire_reservations_total_bucket')).toBe(false);
  });

  it('flags names no registry exports, wrong suffixes and unknown labels', () => {
    expect(unknownMetrics(['sum(rate(stockwire_bogus_total[5m])) / sum(rate(stockwire_reservations_total[5m]))']))
      .toEqual(['stockwire_bogus_total in: sum(rate(stockwire_bogus_total[5m])) / sum(rate(stockwire_reservations_total[5m]))']);
    expect(unknownMetrics(['histogram_quantile(0.99, rate(stockwire_projector_lag_seconds[5m]))'])).toHaveLength(1);
    expect(unknownMetrics(['rate(stockwire_reservations_total_bucket[5m])'])).toHaveLength(1);
    expect(unknownMetrics(['up{job="stockwire-api"} == 0'])).toEqual([]); // label values with hyphens are not names
    expect(unknownSelectorLabels(['rate(stockwire_reservations_total{outcom="reserved"}[5m])'])).toHaveLength(1);
    expect(unknownSelectorLabels(['rate(stockwire_http_request_duration_seconds_bucket{route!="x", le="1", job=~"a"}[5m])'])).toEqual([]);
  });
});

describe('ops/prometheus/alerts.yml', () => {
  it('parses into groups of rules, and promtool-style required fields are all there', () => {
    expect(alertsDoc.groups.length).toBeGreaterThan(0);
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const rule of alerts) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Stockwire[A-Z][A-Za-z0-9]+$/);
      expect(typeof rule.expr, rule.alert).toBe('string');
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(SEVERITIES, rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toEqual(expect.any(String));
      expect(rule.annotations?.description, rule.alert).toEqual(expect.any(String));
    }
    const names = alerts.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
  });

  it('queries only metrics the code exports', () => {
    expect(unknownMetrics(ruleExprs)).toEqual([]);
  });

  it('matches only on labels the metrics carry', () => {
    expect(unknownSelectorLabels(ruleExprs)).toEqual([]);
  });

  it('covers each stage: slot lag, active reader, projector lag, stuck, dead letters, 5xx, p99, sweeper, insufficient stock', () => {
    const referenced = new Set(ruleExprs.flatMap(metricNames));
    for (const name of [
      'stockwire_cdc_slot_lag_bytes', 'stockwire_cdc_slot_lag_seconds', 'stockwire_cdc_active',
      'stockwire_projector_lag_seconds_bucket', 'stockwire_projector_applied_stream_sequence', 'stockwire_cdc_events_published_total',
      'stockwire_projector_dead_letters_total', 'stockwire_http_request_duration_seconds_count',
      'stockwire_http_request_duration_seconds_bucket', 'stockwire_maintenance_runs_total', 'stockwire_reservations_total',
    ]) expect(referenced, name).toContain(name);
    expect(alerts.find((r) => r.expr.includes('outcome="insufficient_stock"'))?.labels?.severity).toBe('info');
  });

  it('links every alert to a heading of docs/runbook.md', () => {
    for (const rule of alerts) {
      const url = rule.annotations?.runbook_url ?? '';
      const match = /(?:^|\/)docs\/runbook\.md#([a-z0-9_-]+)$/.exec(url);
      expect(match, `${rule.alert}: runbook_url ${url}`).not.toBeNull();
      expect(runbookAnchors, `${rule.alert}: no heading for #${match![1]} in docs/runbook.md`).toContain(match![1]);
    }
  });
});

describe('ops/grafana/stockwire.json', () => {
  it('is a dashboard with the four rows and a query in every graph panel', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    const rows = allPanels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toEqual(['Stock health / order flow', 'Pipeline lag per stage', 'Errors', 'Process (API)']);
    const ids = allPanels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of allPanels.filter((p) => p.type === 'timeseries' || p.type === 'stat')) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets!) {
        expect(target.expr, panel.title).toMatch(/stockwire_/);
        expect(target.refId, panel.title).toMatch(/^[A-Z]$/);
      }
    }
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    const placed = allPanels.map((p) => ({ title: p.title, ...p.gridPos }));
    for (const p of placed) expect(p.x + p.w, p.title).toBeLessThanOrEqual(24);
    for (const [i, a] of placed.entries()) {
      for (const b of placed.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} overlaps ${b.title}`).toBe(false);
      }
    }
  });

  it('queries only metrics the code exports', () => {
    expect(dashboardExprs.length).toBeGreaterThan(20);
    expect(unknownMetrics(dashboardExprs)).toEqual([]);
  });

  it('matches only on labels the metrics carry', () => {
    expect(unknownSelectorLabels(dashboardExprs)).toEqual([]);
  });

  it('charts every metric the application declares', () => {
    const referenced = new Set(dashboardExprs.flatMap(metricNames).map((n) => exported.get(n)?.metric));
    expect(APPLICATION_METRICS.filter((m) => !referenced.has(m))).toEqual([]);
  });
});

describe('ops/prometheus/prometheus.yml', () => {
  it('loads alerts.yml from beside it', () => {
    expect(prometheus.rule_files.map((f) => path.resolve(path.dirname(PROMETHEUS_FILE), f))).toContain(ALERTS_FILE);
  });

  it('scrapes api, cdc and projectors on the ports the processes listen on by default, under the job names the alerts match', () => {
    const jobs = new Map(prometheus.scrape_configs.map((c) => [c.job_name, c]));
    const targetDown = alerts.find((r) => r.alert === 'StockwireTargetDown')!;
    const jobPattern = new RegExp(`^(?:${/job=~"([^"]+)"/.exec(targetDown.expr)![1]})$`);
    for (const job of jobs.keys()) expect(job).toMatch(jobPattern);
    const ports = (job: string) => jobs.get(job)!.static_configs.flatMap((s) => s.targets).map((t) => Number(t.split(':').pop()));
    expect(ports('stockwire-api')).toContain(apiConfigSchema.shape.PORT.parse(undefined));
    expect(ports('stockwire-cdc')).toContain(cdcConfigSchema.shape.CDC_PROBE_PORT.parse(undefined));
    expect(ports('stockwire-projectors').length).toBeGreaterThan(0);
    for (const config of jobs.values()) expect(config.metrics_path ?? '/metrics').toBe('/metrics');
  });
});

describe('docs/runbook.md', () => {
  it('has the procedures the alerts and operators need', () => {
    for (const anchor of ['rolling-back-a-migration', 'rebuilding-a-projection', 'manual-overrides', 'rotating-keys', 'provider-quota-exhausted']) {
      expect(runbookAnchors).toContain(anchor);
    }
    expect(runbook).toContain('npm run migrate:down');
    expect(runbook).toContain('npm run replay -- --projector NAME --from-seq N');
    expect(runbook).toContain('npm run resync');
  });

  it('links only to headings that exist, from the runbook itself and from the dashboard', async () => {
    const dashboardText = await readFile(DASHBOARD_FILE, 'utf8');
    const links = [
      ...[...runbook.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!),
      ...[...(alertsText + dashboardText).matchAll(/docs\/runbook\.md#([a-z0-9_-]+)/g)].map((m) => m[1]!),
    ];
    expect(links.length).toBeGreaterThan(alerts.length);
    expect(links.filter((a) => !runbookAnchors.has(a))).toEqual([]);
  });
});
