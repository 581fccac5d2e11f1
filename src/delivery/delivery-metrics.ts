/**
 * Delivery's Prometheus metrics (`GET /metrics` of a process with the worker role): what every push
 * attempt ended as, how long it took, and what the subscriptions this process drives are doing.
 * Labels stay low-cardinality: outcome and error class, never subscription ids or URLs (the
 * attempts API has the per-subscription detail).
 */
import { defineCounter, defineGauge, defineHistogram } from "../metrics.js";
import type { AttemptRecord } from "../storage/attempt-repository.js";

const attempts = defineCounter(
  "herald_push_attempts_total",
  "Push attempts, by outcome (DELIVERED, RETRY, FAILED, DISABLED) and error class ('' when delivered)",
  ["outcome", "error_class"],
);
const attemptEvents = defineCounter(
  "herald_push_attempt_events_total",
  "Events carried by push attempts, by outcome (DELIVERED counts events delivered)",
  ["outcome"],
);
const attemptDuration = defineHistogram(
  "herald_push_duration_seconds",
  "Time from sending a push to its answer (or error), by outcome",
  ["outcome"],
);

/** Counts one attempt (live, parked or replayed) as it is recorded. */
export function countAttempt(attempt: AttemptRecord): void {
  attempts.inc({ outcome: attempt.outcome, error_class: attempt.errorClass ?? "" });
  attemptEvents.inc({ outcome: attempt.outcome }, attempt.eventIds.length);
  attemptDuration.observe({ outcome: attempt.outcome }, attempt.durationMs / 1000);
}

/** What one delivery worker reports at scrape time. */
export interface WorkerGauges {
  driven: number;
  failing: number;
  parkedRecords: number;
  bufferedEvents: number;
}

const workers = new Set<() => WorkerGauges>();

function total(field: keyof WorkerGauges): number {
  let sum = 0;
  for (const read of workers) sum += read()[field];
  return sum;
}

defineGauge(
  "herald_delivery_subscriptions",
  "Subscriptions driven by this process's delivery worker",
  [],
  function () {
    this.set(total("driven"));
  },
);
defineGauge(
  "herald_delivery_failing_subscriptions",
  "Driven subscriptions whose circuit is open (FAILING: the endpoint fails everything)",
  [],
  function () {
    this.set(total("failing"));
  },
);
defineGauge(
  "herald_delivery_parked_records",
  "Records parked behind a failing push, over the subscriptions this process drives",
  [],
  function () {
    this.set(total("parkedRecords"));
  },
);
defineGauge(
  "herald_delivery_buffered_events",
  "Matching events held in memory by this process's delivery worker",
  [],
  function () {
    this.set(total("bufferedEvents"));
  },
);

/** Registers a worker's gauges; returns the function that unregisters them. */
export function reportWorkerGauges(read: () => WorkerGauges): () => void {
  workers.add(read);
  return () => workers.delete(read);
}
