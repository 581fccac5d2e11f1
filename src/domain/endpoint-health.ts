/**
 * Endpoint health (SPEC §6 "Endpoint health"): how long a subscription's endpoint has failed
 * everything decides what Herald does about it. Thresholds are data; the function is pure.
 *
 * - healthy: not failing (`failingSince` is null).
 * - failing: failing for less than `warnAfterMs` (the circuit is open, probes run on the retry schedule).
 * - warn:    failing for at least `warnAfterMs` (24 h): raise SUBSCRIPTION_FAILING_WARNING once.
 * - disable: failing for at least `disableAfterMs` (3 days): deactivate with a reason, raise
 *            SUBSCRIPTION_DISABLED.
 * For a fixed `failingSince`, the answer only moves forward as time passes (failing → warn → disable).
 */

export const ENDPOINT_HEALTH_THRESHOLDS = {
  warnAfterMs: 24 * 60 * 60_000,
  disableAfterMs: 3 * 24 * 60 * 60_000,
} as const;

export interface EndpointHealthThresholds {
  warnAfterMs: number;
  disableAfterMs: number;
}

export const ENDPOINT_HEALTH_KINDS = ["healthy", "failing", "warn", "disable"] as const;
export type EndpointHealthKind = (typeof ENDPOINT_HEALTH_KINDS)[number];

export type EndpointHealth =
  | { kind: "healthy" }
  | { kind: "failing"; failingForMs: number }
  | { kind: "warn"; failingForMs: number }
  | { kind: "disable"; failingForMs: number; reason: string };

/** Operational events (SPEC §6): raised on health transitions, sent by the operations notifier. */
export const OPERATIONAL_EVENT_TYPES = [
  "SUBSCRIPTION_FAILING_WARNING",
  "SUBSCRIPTION_DISABLED",
  "SUBSCRIPTION_RECOVERED",
] as const;
export type OperationalEventType = (typeof OPERATIONAL_EVENT_TYPES)[number];

function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 ? `${Math.floor(h / 24)} days` : `${Math.floor(h)} hours`;
}

/** The health of an endpoint failing since `failingSince` (null = not failing), at `now`. */
export function endpointHealth(
  failingSince: Date | null,
  now: Date,
  thresholds: EndpointHealthThresholds = ENDPOINT_HEALTH_THRESHOLDS,
): EndpointHealth {
  if (failingSince === null) return { kind: "healthy" };
  // A clock step backwards may put failingSince in the future: count that as just started failing.
  const failingForMs = Math.max(0, now.getTime() - failingSince.getTime());
  if (failingForMs >= thresholds.disableAfterMs) {
    return {
      kind: "disable",
      failingForMs,
      reason: `the endpoint failed every push for ${hours(failingForMs)} (since ${failingSince.toISOString()}); deactivated after ${hours(thresholds.disableAfterMs)} of continuous failure`,
    };
  }
  if (failingForMs >= thresholds.warnAfterMs) return { kind: "warn", failingForMs };
  return { kind: "failing", failingForMs };
}

/**
 * The operational event to raise when an endpoint's health goes from `before` to `after`, or
 * undefined when there is nothing to say. A warning is raised once, on entering `warn`; a jump
 * straight from failing (or healthy) to disable raises only SUBSCRIPTION_DISABLED; recovery is
 * announced only when a warning or a disable was announced before.
 */
export function operationalEventFor(
  before: EndpointHealthKind,
  after: EndpointHealthKind,
): OperationalEventType | undefined {
  if (before === after) return undefined;
  if (after === "disable") return "SUBSCRIPTION_DISABLED";
  if (after === "warn" && (before === "healthy" || before === "failing"))
    return "SUBSCRIPTION_FAILING_WARNING";
  if (after === "healthy" && (before === "warn" || before === "disable"))
    return "SUBSCRIPTION_RECOVERED";
  return undefined;
}
