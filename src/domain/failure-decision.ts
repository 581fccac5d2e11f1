/**
 * What a failed push attempt means for its subscription's stream (DESIGN §5, SPEC §6), as one pure
 * function of plain facts. The retry policy has judged the attempt itself (retry after a delay, or
 * the schedule is used up); this decides what the stream does about it:
 *
 * - retry:        the push goes again after the policy's delay; its record's later events wait;
 * - park:         the push's records leave the stream (the endpoint takes other records, so the
 *                 fault is theirs) and the stream moves on;
 * - open-circuit: the endpoint fails everything (failures with no delivery between them): the
 *                 subscription goes FAILING, holds this push and probes on the retry schedule;
 * - hold:         the circuit is open and this push was not the probe: it waits for the circuit to close;
 * - probe-failed: the circuit's probe failed: the next one waits the schedule's next step;
 * - give-up:      the schedule is used up: the push's events are recorded as failed (replayable).
 *
 * While the circuit is open a live push is never given up: it waits for the endpoint to come back.
 * A parked record's head push runs on its own schedule outside the stream: it is retried or given up,
 * never parked again and never held.
 */

/** What the stream does about a failed attempt. */
export const FAILURE_ACTIONS = [
  "retry",
  "park",
  "open-circuit",
  "hold",
  "probe-failed",
  "give-up",
] as const;
export type FailureAction = (typeof FAILURE_ACTIONS)[number];

/** The evidence thresholds, as data (DeliveryTuning carries them). */
export interface FailureThresholds {
  /**
   * Attempts failing in a row, with no delivery between them, that open the circuit (the endpoint
   * fails everything: the subscription goes FAILING and probes with one push on the retry schedule).
   */
  circuitBreakerFailures: number;
  /** A push failing this many attempts while no other push is delivered opens the circuit. */
  circuitOpenAttempts: number;
  /** A push failing this many attempts while other pushes are delivered is parked. */
  parkAfterAttempts: number;
}

export const DEFAULT_FAILURE_THRESHOLDS: FailureThresholds = {
  circuitBreakerFailures: 10,
  circuitOpenAttempts: 3,
  parkAfterAttempts: 2,
};

/** What is known when an attempt of a push has failed. */
export interface FailureFacts {
  /** Live attempts failed in a row over the subscription, this one included, with no delivery between. */
  failureStreak: number;
  /** This push's attempts so far, this one included. */
  attempts: number;
  /** Another push was delivered since this one first failed. */
  othersDelivered: boolean;
  /** The circuit is open (the subscription is FAILING). */
  circuitOpen: boolean;
  /** This push was sent as the circuit's probe. */
  probe: boolean;
  /** This is a parked record's head push. */
  parked: boolean;
}

/** The retry policy's verdict on the attempt: retry after a delay, or failed for good. */
export type PolicyVerdict = "retry" | "failed";

export function decideFailure(
  facts: FailureFacts,
  verdict: PolicyVerdict,
  thresholds: FailureThresholds,
): FailureAction {
  if (facts.parked) return verdict === "failed" ? "give-up" : "retry";
  if (facts.circuitOpen) return facts.probe ? "probe-failed" : "hold";
  const everythingFails =
    facts.failureStreak >= thresholds.circuitBreakerFailures ||
    (facts.attempts >= thresholds.circuitOpenAttempts && !facts.othersDelivered);
  if (everythingFails) return "open-circuit";
  if (verdict === "failed") return "give-up";
  if (facts.attempts >= thresholds.parkAfterAttempts && facts.othersDelivered) return "park";
  return "retry";
}
