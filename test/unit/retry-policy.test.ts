import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { decideOutcome, parseRetryAfter, statusClass } from "../../src/domain/delivery-outcome.js";
import {
  ERROR_CLASSES,
  ERROR_CLASS_RULES,
  MAX_RETRY_AFTER_MS,
  RETRY_JITTER,
  RETRY_SCHEDULE_MS,
  nextRetry,
} from "../../src/domain/retry-policy.js";

const random = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe("retry policy", () => {
  test("the base schedule is SPEC §6: immediately, 5 s, 30 s, 2 min … 24 h, 24 h, about 3 days", () => {
    assert.equal(RETRY_SCHEDULE_MS[0], 0);
    assert.equal(RETRY_SCHEDULE_MS[1], 5_000);
    assert.equal(RETRY_SCHEDULE_MS.length, 12);
    assert.equal(RETRY_SCHEDULE_MS.at(-1), 86_400_000);
    const total = RETRY_SCHEDULE_MS.reduce((a, b) => a + b, 0);
    assert.ok(total > 2.5 * 86_400_000 && total < 3.5 * 86_400_000, `total ${total}`);
    for (let i = 1; i < RETRY_SCHEDULE_MS.length; i++)
      assert.ok((RETRY_SCHEDULE_MS[i] as number) >= (RETRY_SCHEDULE_MS[i - 1] as number));
  });

  test("property: every retry delay is within ±20 % of its slot (or its floor), never negative", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: RETRY_SCHEDULE_MS.length - 1 }),
        fc.constantFrom(...ERROR_CLASSES.filter((c) => ERROR_CLASS_RULES[c].retryable)),
        random,
        (failed, errorClass, r) => {
          const decision = nextRetry(failed, { errorClass }, () => r);
          assert.equal(decision.kind, "retry");
          if (decision.kind !== "retry") return;
          const base = RETRY_SCHEDULE_MS[failed] as number;
          const floor = ERROR_CLASS_RULES[errorClass].minDelayMs;
          assert.ok(decision.delayMs >= 0);
          assert.ok(decision.delayMs >= floor);
          assert.ok(decision.delayMs <= Math.max(Math.round(base * (1 + RETRY_JITTER)), floor));
          assert.ok(decision.delayMs >= Math.max(Math.round(base * (1 - RETRY_JITTER)), floor));
        },
      ),
    );
  });

  test("property: with the same random value, later retries never wait less", () => {
    fc.assert(
      fc.property(random, (r) => {
        let previous = -1;
        for (let n = 1; n < RETRY_SCHEDULE_MS.length; n++) {
          const d = nextRetry(n, { errorClass: "http_5xx" }, () => r);
          assert.equal(d.kind, "retry");
          if (d.kind === "retry") {
            assert.ok(d.delayMs >= previous);
            previous = d.delayMs;
          }
        }
      }),
    );
  });

  test("the schedule runs out, and 410 is terminal", () => {
    assert.deepEqual(nextRetry(RETRY_SCHEDULE_MS.length, { errorClass: "http_5xx" }), {
      kind: "exhausted",
    });
    assert.deepEqual(nextRetry(1, { errorClass: "http_410" }), { kind: "terminal" });
  });

  test("timeouts and 429 wait at least 60 s; Retry-After is honoured and clamped", () => {
    const mid = () => 0.5;
    assert.deepEqual(nextRetry(1, { errorClass: "timeout" }, mid), {
      kind: "retry",
      delayMs: 60_000,
    });
    assert.deepEqual(nextRetry(1, { errorClass: "http_429", retryAfterMs: 120_000 }, mid), {
      kind: "retry",
      delayMs: 120_000,
    });
    assert.deepEqual(nextRetry(1, { errorClass: "http_5xx", retryAfterMs: 10 * 86_400_000 }, mid), {
      kind: "retry",
      delayMs: MAX_RETRY_AFTER_MS,
    });
    // A 4xx does not get to steer the schedule with Retry-After.
    assert.deepEqual(nextRetry(1, { errorClass: "http_4xx", retryAfterMs: 3_600_000 }, mid), {
      kind: "retry",
      delayMs: 5_000,
    });
  });

  test("status classes and outcomes", () => {
    assert.equal(statusClass(200), null);
    assert.equal(statusClass(204), null);
    assert.equal(statusClass(301), "redirect");
    assert.equal(statusClass(404), "http_4xx");
    assert.equal(statusClass(410), "http_410");
    assert.equal(statusClass(429), "http_429");
    assert.equal(statusClass(503), "http_5xx");
    const now = new Date("2026-01-01T00:00:00Z");
    const response = (status: number, retryAfter?: string) =>
      ({ kind: "response", status, retryAfter, excerpt: "", durationMs: 1 }) as const;
    assert.deepEqual(decideOutcome(response(200), 1, now), { kind: "delivered" });
    assert.equal(decideOutcome(response(410), 1, now).kind, "disable");
    assert.equal(decideOutcome(response(500), RETRY_SCHEDULE_MS.length, now).kind, "failed");
    const slow = decideOutcome(response(503, "30"), 1, now, () => 0.5);
    assert.deepEqual(slow, { kind: "retry", delayMs: 30_000, errorClass: "http_5xx" });
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", now), 10_000);
    assert.equal(parseRetryAfter("soon", now), undefined);
  });
});
