/**
 * Start matching (SPEC §7.4): which log events start a scenario's runs, and which dates a DATE
 * start picks on a day. DATA_EVENT starts are checked against the subscription matcher they reuse
 * (a property: same entity, table and type, the same onFields and conditions, the same answer).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { AttributeMap, ChangeEvent, EventType } from "../../src/domain/change-event.js";
import { EVENT_TYPES_BY_SOURCE } from "../../src/domain/change-event.js";
import type { MatchingConditions } from "../../src/domain/conditions.js";
import type { LogStart, StartCriteria } from "../../src/domain/scenario-start-matching.js";
import {
  anniversaryMonthDays,
  dateStartMatch,
  dayIn,
  entryKeyPrefix,
  isLogStart,
  startedProfileId,
  startEventType,
  startMatches,
  startReadsState,
} from "../../src/domain/scenario-start-matching.js";
import { entryKey, REENTRY_POLICIES } from "../../src/domain/scenario.js";
import { matchesSubscription } from "../../src/domain/subscription-matching.js";

const FIELDS = ["email", "tier", "points", "city"] as const;

function event(overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    id: 1,
    position: 1,
    occurredAt: new Date(0),
    entityId: 1,
    source: "PROFILE_TABLE",
    sourceId: "t1",
    eventType: "UPDATE",
    recordKey: "42",
    keys: { profileId: 42 },
    state: { profileId: 42, email: "a@b.c", tier: "Gold" },
    fields: ["tier"],
    previous: { tier: "Silver" },
    extra: {},
    version: 2,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
    ...overrides,
  };
}

function criteria(start: LogStart): StartCriteria {
  return { entityId: 1, tableId: "t1", start };
}

const dataEvent = (
  eventType: "CREATE" | "UPDATE",
  onFields: string[] = [],
  conditions: MatchingConditions = {},
): LogStart => ({ type: "DATA_EVENT", eventType, onFields, conditions });

describe("log starts", () => {
  test("only DATA_EVENT, SEGMENT_ENTRY and SUBSCRIPTION read the log", () => {
    assert.equal(isLogStart(dataEvent("CREATE")), true);
    assert.equal(isLogStart({ type: "SEGMENT_ENTRY", segmentation: "S", segment: "A" }), true);
    assert.equal(isLogStart({ type: "SUBSCRIPTION", subscription: "news", subscribe: true }), true);
    assert.equal(isLogStart({ type: "API" }), false);
    assert.equal(
      isLogStart({ type: "DATE", attribute: "b", anniversary: true, at: "09:00", timezone: "UTC" }),
      false,
    );
  });

  test("each log start reads one event type", () => {
    assert.equal(startEventType(dataEvent("CREATE")), "CREATE");
    assert.equal(startEventType(dataEvent("UPDATE")), "UPDATE");
    assert.equal(
      startEventType({ type: "SEGMENT_ENTRY", segmentation: "S", segment: "A" }),
      "UPDATED_SEGMENT",
    );
    assert.equal(
      startEventType({ type: "SUBSCRIPTION", subscription: "n", subscribe: false }),
      "UPDATED_SUBSCRIPTION",
    );
  });

  test("state is read only for a DATA_EVENT start with conditions", () => {
    assert.equal(startReadsState(dataEvent("UPDATE")), false);
    assert.equal(
      startReadsState(
        dataEvent("UPDATE", [], { stateBeforeOperation: [], stateAfterOperation: [] }),
      ),
      false,
    );
    assert.equal(
      startReadsState(
        dataEvent("UPDATE", [], {
          stateAfterOperation: [{ attribute: "tier", operator: "=", value: "Gold" }],
        }),
      ),
      true,
    );
  });

  test("events of another entity, table, source or type start nothing", () => {
    const c = criteria(dataEvent("UPDATE"));
    assert.equal(startMatches(c, event()), true);
    assert.equal(startMatches(c, event({ entityId: 2 })), false);
    assert.equal(startMatches(c, event({ sourceId: "t2" })), false);
    assert.equal(startMatches(c, event({ source: "CUSTOM_TABLE" })), false);
    assert.equal(startMatches(c, event({ eventType: "CREATE" })), false);
    assert.equal(startMatches(c, event({ eventType: "DELETE" })), false);
  });

  test("DATA_EVENT: onFields and conditions on the states before and after", () => {
    const onTier = criteria(dataEvent("UPDATE", ["tier"]));
    assert.equal(startMatches(onTier, event({ fields: ["tier"] })), true);
    assert.equal(startMatches(onTier, event({ fields: ["email"] })), false);
    const becameGold = criteria(
      dataEvent("UPDATE", [], {
        stateBeforeOperation: [{ attribute: "tier", operator: "!=", value: "Gold" }],
        stateAfterOperation: [{ attribute: "tier", operator: "=", value: "Gold" }],
      }),
    );
    assert.equal(startMatches(becameGold, event()), true);
    assert.equal(
      startMatches(becameGold, event({ previous: { email: "old@b.c" }, fields: ["email"] })),
      false,
      "already Gold before the update",
    );
    const createdGold = criteria(
      dataEvent("CREATE", [], {
        stateAfterOperation: [{ attribute: "tier", operator: "=", value: "Gold" }],
      }),
    );
    assert.equal(
      startMatches(createdGold, event({ eventType: "CREATE", previous: {}, fields: ["tier"] })),
      true,
    );
    assert.equal(
      startMatches(
        createdGold,
        event({ eventType: "CREATE", state: { tier: "Silver" }, previous: {}, fields: ["tier"] }),
      ),
      false,
    );
  });

  test("SEGMENT_ENTRY: entering the segment, not leaving it, not another one", () => {
    const c = criteria({ type: "SEGMENT_ENTRY", segmentation: "Loyalty", segment: "Gold" });
    const segment = (extra: Record<string, unknown>) =>
      event({ eventType: "UPDATED_SEGMENT", fields: [], previous: {}, extra });
    assert.equal(
      startMatches(c, segment({ segmentation: "Loyalty", segment: "Gold", belongs: true })),
      true,
    );
    assert.equal(
      startMatches(c, segment({ segmentation: "Loyalty", segment: "Gold", belongs: false })),
      false,
    );
    assert.equal(
      startMatches(c, segment({ segmentation: "Loyalty", segment: "Silver", belongs: true })),
      false,
    );
    assert.equal(
      startMatches(c, segment({ segmentation: "Region", segment: "Gold", belongs: true })),
      false,
    );
  });

  test("SUBSCRIPTION: the subscription named, with the subscribe value asked", () => {
    const subscribes = criteria({ type: "SUBSCRIPTION", subscription: "news", subscribe: true });
    const leaves = criteria({ type: "SUBSCRIPTION", subscription: "news", subscribe: false });
    const change = (extra: Record<string, unknown>) =>
      event({ eventType: "UPDATED_SUBSCRIPTION", fields: [], previous: {}, extra });
    assert.equal(
      startMatches(subscribes, change({ subscriptionName: "news", subscribe: true })),
      true,
    );
    assert.equal(
      startMatches(subscribes, change({ subscriptionName: "news", subscribe: false })),
      false,
    );
    assert.equal(
      startMatches(leaves, change({ subscriptionName: "news", subscribe: false })),
      true,
    );
    assert.equal(
      startMatches(subscribes, change({ subscriptionName: "offers", subscribe: true })),
      false,
    );
  });

  test("the started profile is the event's record key", () => {
    assert.equal(startedProfileId(event({ recordKey: "42" })), 42);
    assert.equal(startedProfileId(event({ recordKey: "C-1" })), undefined);
    assert.equal(startedProfileId(event({ recordKey: "0" })), undefined);
  });
});

// --- DATA_EVENT agrees with the subscription matcher ----------------------------------------------

const value = fc.oneof(
  fc.constantFrom("Gold", "Silver", "", "10"),
  fc.integer({ min: 0, max: 20 }),
);
const attributeMap: fc.Arbitrary<AttributeMap> = fc.dictionary(fc.constantFrom(...FIELDS), value);
const fieldList = fc.uniqueArray(fc.constantFrom(...FIELDS), { maxLength: FIELDS.length });
const condition = fc.record({
  attribute: fc.constantFrom(...FIELDS),
  operator: fc.constantFrom("=", "!=", "<", ">", "IS_NULL", "IS_NOT_NULL", "CHANGED" as const),
  value,
});
const conditions: fc.Arbitrary<MatchingConditions> = fc.record(
  {
    stateBeforeOperation: fc.array(condition, { maxLength: 2 }),
    stateAfterOperation: fc.array(condition, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const profileEvent: fc.Arbitrary<ChangeEvent> = fc
  .record({
    eventType: fc.constantFrom(...EVENT_TYPES_BY_SOURCE.PROFILE_TABLE),
    entityId: fc.integer({ min: 1, max: 2 }),
    sourceId: fc.constantFrom("t1", "t2"),
    state: attributeMap,
    fields: fieldList,
    previous: attributeMap,
  })
  .map((overrides) => event(overrides));

describe("DATA_EVENT starts match as subscriptions do", () => {
  test("same entity, table, type, onFields and conditions: the same answer", () => {
    fc.assert(
      fc.property(
        profileEvent,
        fc.constantFrom<"CREATE" | "UPDATE">("CREATE", "UPDATE"),
        fieldList,
        conditions,
        (e, eventType, onFields, when) => {
          const start = dataEvent(eventType, onFields, when);
          const subscribed = matchesSubscription(
            {
              entityId: 1,
              on: "PROFILE_TABLE",
              onElementId: "t1",
              eventType: eventType as EventType,
              onFields,
              conditions: when,
            },
            e,
          );
          assert.equal(startMatches(criteria(start), e), subscribed);
        },
      ),
    );
  });
});

// --- DATE starts ------------------------------------------------------------------------------------

describe("DATE starts", () => {
  test("the day of a due time is the day in the start's time zone", () => {
    // 23:30 UTC on 14 March is already 15 March in Brussels (UTC+1), still 14 March in New York.
    const at = new Date("2026-03-14T23:30:00Z");
    assert.equal(dayIn("UTC", at), "2026-03-14");
    assert.equal(dayIn("Europe/Brussels", at), "2026-03-15");
    assert.equal(dayIn("America/New_York", at), "2026-03-14");
    // 08:00 in Auckland (UTC+13 in summer) is the previous day in UTC.
    assert.equal(dayIn("Pacific/Auckland", new Date("2026-01-09T19:00:00Z")), "2026-01-10");
  });

  test("an exact date picks that day only", () => {
    assert.deepEqual(dateStartMatch({ anniversary: false }, "2026-05-04"), {
      kind: "exact",
      day: "2026-05-04",
    });
  });

  test("an anniversary picks the month and day of any year", () => {
    assert.deepEqual(dateStartMatch({ anniversary: true }, "2026-05-04"), {
      kind: "anniversary",
      monthDays: ["05-04"],
    });
  });

  test("29 February anniversaries fall on 28 February in years without one", () => {
    assert.deepEqual(anniversaryMonthDays("2026-02-28"), ["02-28", "02-29"]);
    assert.deepEqual(anniversaryMonthDays("2028-02-28"), ["02-28"]);
    assert.deepEqual(anniversaryMonthDays("2028-02-29"), ["02-29"]);
    assert.deepEqual(anniversaryMonthDays("2100-02-28"), ["02-28", "02-29"]);
    assert.deepEqual(anniversaryMonthDays("2000-02-28"), ["02-28"]);
  });
});

describe("DATE starts' re-entry keys", () => {
  test("the prefix and the profile id make entryKey's key, for every policy", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...REENTRY_POLICIES),
        fc.integer({ min: 1, max: 2 ** 53 - 1 }),
        (reentry, profileId) => {
          const prefix = entryKeyPrefix(reentry);
          assert.equal(
            prefix === null ? null : `${prefix}${profileId}`,
            entryKey(reentry, profileId),
          );
        },
      ),
    );
  });
});
