import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { EndpointHealthKind } from "../../src/domain/endpoint-health.js";
import {
  ENDPOINT_HEALTH_KINDS,
  ENDPOINT_HEALTH_THRESHOLDS,
  endpointHealth,
  operationalEventFor,
} from "../../src/domain/endpoint-health.js";

const HOUR = 3_600_000;
const since = new Date("2026-11-01T00:00:00Z");
const at = (ms: number) => new Date(since.getTime() + ms);
const rank = (kind: EndpointHealthKind) => ENDPOINT_HEALTH_KINDS.indexOf(kind);

describe("endpoint health", () => {
  test("thresholds are SPEC §6: a warning after 24 h, deactivation after 3 days", () => {
    assert.equal(ENDPOINT_HEALTH_THRESHOLDS.warnAfterMs, 24 * HOUR);
    assert.equal(ENDPOINT_HEALTH_THRESHOLDS.disableAfterMs, 72 * HOUR);
  });

  test("healthy when not failing, whatever the time", () => {
    assert.deepEqual(endpointHealth(null, new Date()), { kind: "healthy" });
  });

  test("the boundaries: failing below 24 h, warn from 24 h, disable from 72 h", () => {
    assert.equal(endpointHealth(since, since).kind, "failing");
    assert.equal(endpointHealth(since, at(24 * HOUR - 1)).kind, "failing");
    assert.equal(endpointHealth(since, at(24 * HOUR)).kind, "warn");
    assert.equal(endpointHealth(since, at(72 * HOUR - 1)).kind, "warn");
    const disabled = endpointHealth(since, at(72 * HOUR));
    assert.equal(disabled.kind, "disable");
    assert.match((disabled as { reason: string }).reason, /3 days .*2026-11-01T00:00:00.000Z/);
  });

  test("a failingSince in the future (clock step) counts as just started failing", () => {
    assert.deepEqual(endpointHealth(at(HOUR), since), { kind: "failing", failingForMs: 0 });
  });

  test("property: monotone in time — a later now never gives a healthier answer", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -10 * HOUR, max: 200 * HOUR }),
        fc.integer({ min: 0, max: 200 * HOUR }),
        (elapsed, more) => {
          const earlier = endpointHealth(since, at(elapsed));
          const later = endpointHealth(since, at(elapsed + more));
          assert.ok(rank(later.kind) >= rank(earlier.kind), `${earlier.kind} then ${later.kind}`);
          assert.notEqual(later.kind, "healthy");
        },
      ),
    );
  });

  test("property: monotone in the thresholds' data — custom thresholds are honoured exactly", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 * HOUR }),
        fc.integer({ min: 0, max: 100 * HOUR }),
        fc.integer({ min: 0, max: 300 * HOUR }),
        (warnAfterMs, gap, elapsed) => {
          const thresholds = { warnAfterMs, disableAfterMs: warnAfterMs + gap };
          const kind = endpointHealth(since, at(elapsed), thresholds).kind;
          const expected =
            elapsed >= thresholds.disableAfterMs
              ? "disable"
              : elapsed >= warnAfterMs
                ? "warn"
                : "failing";
          assert.equal(kind, expected);
        },
      ),
    );
  });

  test("operational events: warn once on entering warn, disabled on disable, recovered after an announcement", () => {
    assert.equal(operationalEventFor("failing", "warn"), "SUBSCRIPTION_FAILING_WARNING");
    assert.equal(operationalEventFor("warn", "warn"), undefined);
    assert.equal(operationalEventFor("warn", "disable"), "SUBSCRIPTION_DISABLED");
    assert.equal(operationalEventFor("failing", "disable"), "SUBSCRIPTION_DISABLED");
    assert.equal(operationalEventFor("warn", "healthy"), "SUBSCRIPTION_RECOVERED");
    assert.equal(operationalEventFor("disable", "healthy"), "SUBSCRIPTION_RECOVERED");
    assert.equal(operationalEventFor("failing", "healthy"), undefined);
    assert.equal(operationalEventFor("healthy", "failing"), undefined);
  });

  test("property: walking time forward raises each operational event at most once", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10 * HOUR }), { minLength: 1, maxLength: 60 }),
        (steps) => {
          let elapsed = 0;
          let kind: EndpointHealthKind = "healthy";
          const raised: string[] = [];
          for (const step of steps) {
            elapsed += step;
            const next = endpointHealth(since, at(elapsed)).kind;
            const event = operationalEventFor(kind, next);
            if (event) raised.push(event);
            kind = next;
          }
          assert.equal(new Set(raised).size, raised.length, raised.join(","));
        },
      ),
    );
  });
});
