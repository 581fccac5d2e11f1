/**
 * What one block does to a run (src/domain/scenario-steps.ts): WAIT by duration and until a date
 * attribute (in a time zone, across a daylight saving change, a date already past, no date),
 * FILTER both ways and with no way on, the blocks with effects, EXIT; and the failure policy.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { AttributeMap } from "../../src/domain/change-event.js";
import type { ScenarioBlock } from "../../src/domain/scenario.js";
import type { BlockOutcome, WaitBlock } from "../../src/domain/scenario-steps.js";
import { MAX_BLOCKS } from "../../src/domain/scenario-definition.js";
import {
  afterRunFailure,
  dateOf,
  MAX_BLOCKS_PER_MOVE,
  RUN_FAILURE_POLICY,
  runBlock,
  spinningReason,
  waitEnd,
} from "../../src/domain/scenario-steps.js";

const NOW = new Date("2026-03-02T08:00:00.000Z");
const PROFILE = { profileId: 7, tier: "Gold", points: 120, birthDate: "1990-03-10" };

function run(
  block: ScenarioBlock,
  waitOver = false,
  profile: AttributeMap = PROFILE,
  now = NOW,
): BlockOutcome {
  return runBlock(block, { profile, now, waitOver });
}

const wait = (extra: Partial<WaitBlock>): WaitBlock => ({
  id: "w",
  type: "WAIT",
  next: "after",
  ...extra,
});

describe("WAIT", () => {
  test("a duration waits until now plus the duration", () => {
    assert.deepEqual(run(wait({ duration: "PT1H" })), {
      kind: "wait",
      until: new Date("2026-03-02T09:00:00.000Z"),
    });
    assert.deepEqual(run(wait({ duration: "P2D" })), {
      kind: "wait",
      until: new Date("2026-03-04T08:00:00.000Z"),
    });
  });

  test("PT0S goes on at once, in the same move", () => {
    assert.deepEqual(run(wait({ duration: "PT0S" })), { kind: "pass", next: "after" });
  });

  test("a run whose wait is over goes on, without waiting again", () => {
    assert.deepEqual(run(wait({ duration: "PT1H" }), true), { kind: "pass", next: "after" });
    assert.deepEqual(run(wait({ untilAttribute: "birthDate" }), true), {
      kind: "pass",
      next: "after",
    });
  });

  test("until a DATE attribute: midnight of that day in the block's time zone, plus the duration", () => {
    assert.deepEqual(
      run(wait({ untilAttribute: "birthDate" }), false, {
        ...PROFILE,
        birthDate: "2026-03-10",
      }),
      { kind: "wait", until: new Date("2026-03-10T00:00:00.000Z") },
    );
    assert.deepEqual(
      run(
        wait({ untilAttribute: "birthDate", timezone: "Europe/Brussels", duration: "PT9H" }),
        false,
        {
          ...PROFILE,
          birthDate: "2026-03-10",
        },
      ),
      // Midnight in Brussels (UTC+1 in March before the change) is 23:00 UTC the day before.
      { kind: "wait", until: new Date("2026-03-10T08:00:00.000Z") },
    );
  });

  test("until a date across a daylight saving change: P1D keeps the wall clock time", () => {
    const block = wait({
      untilAttribute: "day",
      timezone: "Europe/Brussels",
      duration: "P1DT9H",
    });
    // 2026-03-29: clocks go from 02:00 to 03:00 in Brussels. Midnight of the 28th + 1 day is
    // midnight of the 29th (UTC+1), + 9 h elapsed is 10:00 that day (UTC+2), 08:00 UTC.
    const end = waitEnd(block, { day: "2026-03-28" }, NOW);
    assert.deepEqual(end, { kind: "at", at: new Date("2026-03-29T08:00:00.000Z") });
  });

  test("until a TIMESTAMP attribute: that instant", () => {
    assert.deepEqual(
      run(wait({ untilAttribute: "at" }), false, { at: "2026-03-02T10:30:00.000Z" }),
      { kind: "wait", until: new Date("2026-03-02T10:30:00.000Z") },
    );
  });

  test("a date already past goes on at once", () => {
    assert.deepEqual(run(wait({ untilAttribute: "birthDate" })), { kind: "pass", next: "after" });
    assert.deepEqual(
      run(wait({ untilAttribute: "birthDate", duration: "P1Y" }), false, {
        birthDate: "2025-03-02",
      }),
      // 2025-03-02 + 1 year is 2026-03-02 00:00, before now.
      { kind: "pass", next: "after" },
    );
  });

  test("until a date the profile does not have: the run leaves, saying why", () => {
    for (const value of [undefined, null, "", "not a date", 12]) {
      const outcome = run(wait({ untilAttribute: "birthDate" }), false, {
        profileId: 7,
        ...(value === undefined ? {} : { birthDate: value }),
      });
      assert.equal(outcome.kind, "leave");
      assert.match(
        (outcome as { reason: string }).reason,
        /WAIT 'w' waits until the profile's 'birthDate', which holds no date/,
      );
    }
  });

  test("a stored duration that does not parse is an error, not a silent pass", () => {
    assert.throws(() => run(wait({ duration: "one hour" })), /not an ISO 8601 duration/);
  });

  test("dateOf reads DATE and TIMESTAMP values only", () => {
    assert.deepEqual(dateOf("2026-01-02", "UTC"), new Date("2026-01-02T00:00:00Z"));
    assert.deepEqual(dateOf("2026-07-02", "America/New_York"), new Date("2026-07-02T04:00:00Z"));
    assert.deepEqual(
      dateOf("2026-01-02T03:04:05.006Z", "UTC"),
      new Date("2026-01-02T03:04:05.006Z"),
    );
    assert.equal(dateOf("02/01/2026", "UTC"), undefined);
    assert.equal(dateOf(["2026-01-02"], "UTC"), undefined);
    assert.equal(dateOf(true, "UTC"), undefined);
  });

  test("a wait ends after now exactly when it waits", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: -5, max: 5 }), (s, d) => {
        const base = new Date(NOW.getTime() + d * 86_400_000).toISOString().slice(0, 10);
        const block = wait({ untilAttribute: "day", duration: `PT${s}S` });
        const outcome = run(block, false, { day: base });
        const end = new Date(`${base}T00:00:00Z`).getTime() + s * 1000;
        if (end > NOW.getTime()) assert.deepEqual(outcome, { kind: "wait", until: new Date(end) });
        else assert.deepEqual(outcome, { kind: "pass", next: "after" });
      }),
    );
  });
});

describe("FILTER", () => {
  const filter = (otherwise?: string): ScenarioBlock => ({
    id: "gold",
    type: "FILTER",
    conditions: [
      { attribute: "tier", operator: "=", value: "Gold" },
      { attribute: "points", operator: ">=", value: 100 },
    ],
    next: "crm",
    ...(otherwise === undefined ? {} : { otherwise }),
  });

  test("every condition holds on the profile: next", () => {
    assert.deepEqual(run(filter("end")), { kind: "pass", next: "crm" });
  });

  test("one does not: otherwise", () => {
    assert.deepEqual(run(filter("end"), false, { ...PROFILE, points: 99 }), {
      kind: "pass",
      next: "end",
    });
    assert.deepEqual(run(filter("end"), false, { ...PROFILE, tier: "Silver" }), {
      kind: "pass",
      next: "end",
    });
  });

  test("one does not and there is no otherwise: the run leaves here", () => {
    assert.deepEqual(run(filter(), false, { profileId: 7 }), { kind: "leave", reason: null });
  });

  test("technical attributes are conditions' attributes too", () => {
    const block: ScenarioBlock = {
      id: "f",
      type: "FILTER",
      conditions: [{ attribute: "profileId", operator: "=", value: 7 }],
      next: "n",
    };
    assert.deepEqual(run(block), { kind: "pass", next: "n" });
  });
});

describe("blocks with effects, and EXIT", () => {
  test("CUSTOM_ACTION passes with a TRIGGER to write", () => {
    const block: ScenarioBlock = {
      id: "crm",
      type: "CUSTOM_ACTION",
      customActionId: "3",
      parameters: { campaignId: "987654" },
      next: "tag",
    };
    assert.deepEqual(run(block), { kind: "pass", next: "tag", effect: { kind: "TRIGGER", block } });
  });

  test("UPDATE_PROFILE passes with the profile write to make", () => {
    const block: ScenarioBlock = {
      id: "tag",
      type: "UPDATE_PROFILE",
      attributes: { tier: "Platinum" },
      subscriptions: {},
      segmentations: { Active: "Active" },
      next: "end",
    };
    assert.deepEqual(run(block), {
      kind: "pass",
      next: "end",
      effect: { kind: "UPDATE_PROFILE", block },
    });
  });

  test("EXIT ends the run", () => {
    assert.deepEqual(run({ id: "end", type: "EXIT" }), { kind: "leave", reason: null });
  });
});

describe("failures", () => {
  test("a failed move is retried later, 30 s more each time, then given up", () => {
    assert.deepEqual(afterRunFailure(0, NOW), {
      kind: "retry",
      failures: 1,
      at: new Date(NOW.getTime() + 30_000),
    });
    assert.deepEqual(afterRunFailure(3, NOW), {
      kind: "retry",
      failures: 4,
      at: new Date(NOW.getTime() + 120_000),
    });
    assert.deepEqual(afterRunFailure(RUN_FAILURE_POLICY.maxFailures - 1, NOW), {
      kind: "failed",
      failures: RUN_FAILURE_POLICY.maxFailures,
    });
  });
});

describe("a run that goes round without waiting", () => {
  test("is given up with a reason that says why and what to look at", () => {
    assert.equal(
      spinningReason(3, "renewal"),
      "the run came back to WAIT 'renewal' after 3 blocks in one move without waiting: a loop whose WAIT does not wait (a date already past, or no duration); FAILED so it does not spin",
    );
    assert.equal(
      spinningReason(MAX_BLOCKS_PER_MOVE),
      `the run went through ${MAX_BLOCKS_PER_MOVE} blocks in one move without waiting: a loop whose WAIT does not wait (a date already past, or no duration); FAILED so it does not spin`,
    );
  });

  test("the bound on one move is well above the longest chain of blocks a definition may have", () => {
    assert.ok(MAX_BLOCKS_PER_MOVE >= 5 * MAX_BLOCKS);
  });
});
