import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type {
  FailureFacts,
  FailureThresholds,
  PolicyVerdict,
} from "../../src/domain/failure-decision.js";
import {
  DEFAULT_FAILURE_THRESHOLDS,
  FAILURE_ACTIONS,
  decideFailure,
} from "../../src/domain/failure-decision.js";

const facts = fc.record<FailureFacts>({
  failureStreak: fc.integer({ min: 1, max: 40 }),
  attempts: fc.integer({ min: 1, max: 15 }),
  othersDelivered: fc.boolean(),
  circuitOpen: fc.boolean(),
  probe: fc.boolean(),
  parked: fc.boolean(),
});
const verdict = fc.constantFrom<PolicyVerdict>("retry", "failed");
const thresholds = fc.record<FailureThresholds>({
  circuitBreakerFailures: fc.integer({ min: 1, max: 30 }),
  circuitOpenAttempts: fc.integer({ min: 1, max: 10 }),
  parkAfterAttempts: fc.integer({ min: 1, max: 10 }),
});

/** A live push (neither parked nor sent while the circuit is open). */
const live = (f: FailureFacts): FailureFacts => ({ ...f, parked: false, circuitOpen: false });

/**
 * The decision as the subscription runner wrote it inline before it became this function (its
 * literal thresholds), for the pin below.
 */
function runnerDecision(f: FailureFacts, v: PolicyVerdict): string {
  if (f.parked) return v === "failed" ? "give-up" : "retry";
  if (f.circuitOpen) return f.probe ? "probe-failed" : "hold";
  if (f.failureStreak >= 10 || (f.attempts >= 3 && !f.othersDelivered)) return "open-circuit";
  if (v === "failed") return "give-up";
  if (f.attempts >= 2 && f.othersDelivered) return "park";
  return "retry";
}

describe("failure decision", () => {
  test("property: with the default thresholds it decides as the runner did", () => {
    fc.assert(
      fc.property(facts, verdict, (f, v) => {
        assert.equal(decideFailure(f, v, DEFAULT_FAILURE_THRESHOLDS), runnerDecision(f, v));
      }),
    );
  });

  test("property: every decision is one of the actions", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        assert.ok(FAILURE_ACTIONS.includes(decideFailure(f, v, t)));
      }),
    );
  });

  test("property: a push is never parked unless other pushes were delivered since it failed", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        const action = decideFailure({ ...f, othersDelivered: false }, v, t);
        assert.notEqual(action, "park");
      }),
    );
  });

  test("property: while the circuit is open a live push is never given up, parked or retried", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        const action = decideFailure({ ...f, parked: false, circuitOpen: true }, v, t);
        assert.equal(action, f.probe ? "probe-failed" : "hold");
      }),
    );
  });

  test("property: a probe's failure never parks and never gives up", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        const action = decideFailure({ ...f, parked: false, circuitOpen: true, probe: true }, v, t);
        assert.equal(action, "probe-failed");
      }),
    );
  });

  test("property: a parked record's push is retried or given up as the policy says, whatever the circuit", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        const action = decideFailure({ ...f, parked: true }, v, t);
        assert.equal(action, v === "failed" ? "give-up" : "retry");
      }),
    );
  });

  test("property: with the circuit closed, nothing is held and no probe has failed", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        const action = decideFailure(live(f), v, t);
        assert.ok(action !== "hold" && action !== "probe-failed", action);
      }),
    );
  });

  test("property: opening the circuit is monotone in the failure streak and in the attempts", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, fc.integer({ min: 0, max: 20 }), (f, v, t, more) => {
        if (decideFailure(live(f), v, t) !== "open-circuit") return;
        const longerStreak = { ...live(f), failureStreak: f.failureStreak + more };
        assert.equal(decideFailure(longerStreak, v, t), "open-circuit");
        const moreAttempts = { ...live(f), attempts: f.attempts + more };
        assert.equal(decideFailure(moreAttempts, v, t), "open-circuit");
      }),
    );
  });

  test("property: a streak at the threshold opens the circuit, whatever else", () => {
    fc.assert(
      fc.property(facts, verdict, thresholds, (f, v, t) => {
        const atThreshold = { ...live(f), failureStreak: t.circuitBreakerFailures };
        assert.equal(decideFailure(atThreshold, v, t), "open-circuit");
      }),
    );
  });

  test("property: below every threshold a live push is retried, or given up once the schedule is used up", () => {
    fc.assert(
      fc.property(facts, verdict, (f, v) => {
        const t = { circuitBreakerFailures: 100, circuitOpenAttempts: 100, parkAfterAttempts: 100 };
        assert.equal(decideFailure(live(f), v, t), v === "failed" ? "give-up" : "retry");
      }),
    );
  });

  test("the thresholds of SPEC §6, one case each", () => {
    const t = DEFAULT_FAILURE_THRESHOLDS;
    const push = (over: Partial<FailureFacts>): FailureFacts => ({
      failureStreak: 1,
      attempts: 1,
      othersDelivered: false,
      circuitOpen: false,
      probe: false,
      parked: false,
      ...over,
    });
    assert.equal(decideFailure(push({}), "retry", t), "retry");
    assert.equal(decideFailure(push({ attempts: 2, othersDelivered: true }), "retry", t), "park");
    assert.equal(decideFailure(push({ attempts: 2 }), "retry", t), "retry");
    assert.equal(
      decideFailure(push({ attempts: 3, failureStreak: 3 }), "retry", t),
      "open-circuit",
    );
    assert.equal(
      decideFailure(push({ failureStreak: 10, othersDelivered: true }), "retry", t),
      "open-circuit",
    );
    assert.equal(decideFailure(push({ othersDelivered: true }), "failed", t), "give-up");
    // The schedule used up while nothing else gets through: the endpoint, not the push, is at fault.
    assert.equal(decideFailure(push({ attempts: 12 }), "failed", t), "open-circuit");
    assert.equal(decideFailure(push({ circuitOpen: true }), "failed", t), "hold");
    assert.equal(
      decideFailure(push({ circuitOpen: true, probe: true }), "retry", t),
      "probe-failed",
    );
    assert.equal(decideFailure(push({ parked: true, attempts: 5 }), "retry", t), "retry");
    assert.equal(decideFailure(push({ parked: true, circuitOpen: true }), "failed", t), "give-up");
  });
});
