/**
 * Prometheus metrics (SPEC §8, `GET /metrics`). One registry per process. Components define their
 * metrics with the helpers below; defining the same name twice returns the existing metric, so a
 * module may define its metrics at import time and tests may build many apps in one process.
 *
 *   const pushes = defineCounter("herald_pushes_total", "Pushes sent, by outcome", ["outcome"]);
 *   pushes.inc({ outcome: "delivered" });
 *
 * Names start with `herald_`; labels stay low-cardinality (no record keys, no URLs with ids).
 */
import type { Metric } from "prom-client";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export const metricsRegistry = new Registry();
metricsRegistry.setDefaultLabels({ service: "herald" });
collectDefaultMetrics({ register: metricsRegistry, prefix: "herald_" });

/** Buckets for latencies in seconds, from 1 ms to 1 min. */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

function existing<M extends Metric>(
  name: string,
  kind: new (...args: never[]) => M,
): M | undefined {
  const metric = metricsRegistry.getSingleMetric(name);
  if (metric === undefined) return undefined;
  if (!(metric instanceof kind)) {
    throw new Error(`metric ${name} is already defined with another type`);
  }
  return metric;
}

export function defineCounter<L extends string = never>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  return (
    existing(name, Counter<L>) ??
    new Counter<L>({ name, help, labelNames, registers: [metricsRegistry] })
  );
}

export function defineGauge<L extends string = never>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  /** Called at scrape time to set the current value(s), for gauges read from elsewhere. */
  collect?: (this: Gauge<L>) => void | Promise<void>,
): Gauge<L> {
  return (
    existing(name, Gauge<L>) ??
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [metricsRegistry],
      ...(collect ? { collect } : {}),
    })
  );
}

export function defineHistogram<L extends string = never>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets: number[] = LATENCY_BUCKETS_SECONDS,
): Histogram<L> {
  return (
    existing(name, Histogram<L>) ??
    new Histogram<L>({ name, help, labelNames, buckets, registers: [metricsRegistry] })
  );
}

/** The exposition text and its content type, for `GET /metrics`. */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}

// The API's own metrics.
export const httpRequests = defineCounter(
  "herald_http_requests_total",
  "API requests answered, by method, route pattern and status code",
  ["method", "route", "status"],
);
export const httpRequestDuration = defineHistogram(
  "herald_http_request_duration_seconds",
  "Time to answer an API request, by method and route pattern",
  ["method", "route"],
);
export const rateLimitedRequests = defineCounter(
  "herald_http_rate_limited_total",
  "API requests refused with 429, by limit",
  ["limit"],
);
