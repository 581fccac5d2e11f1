import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type {
  AttributeMap,
  ChangeEvent,
  EventSource,
  EventType,
} from "../../src/domain/change-event.js";
import { EVENT_SOURCES, EVENT_TYPES_BY_SOURCE } from "../../src/domain/change-event.js";
import type { MatchingConditions } from "../../src/domain/conditions.js";
import type { Subscription } from "../../src/domain/subscription.js";
import { eventStates, matchesSubscription } from "../../src/domain/subscription-matching.js";

const FIELDS = ["email", "status", "amount", "city", "name"] as const;

function subscription(overrides: Partial<Subscription> = {}): Subscription {
  return {
    id: 1,
    entityId: 1,
    entityName: "acme",
    on: "PROFILE_TABLE",
    onElementId: "7",
    eventType: "UPDATE",
    onFields: [],
    targetUrl: "https://example.test/hook",
    headers: {},
    isActive: true,
    pushMode: "ONE_BY_ONE",
    maxBlockSize: 100,
    lingerMs: 1000,
    maxWaitMs: 5000,
    maxConcurrency: 8,
    includePrevious: false,
    conditions: null,
    payloadVersion: 2,
    secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    previousSecret: null,
    previousSecretExpiresAt: null,
    state: "ACTIVE",
    stateReason: null,
    failingSince: null,
    expiresAt: null,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    ...overrides,
  };
}

function event(overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    id: 1,
    position: 1,
    occurredAt: new Date(0),
    entityId: 1,
    source: "PROFILE_TABLE",
    sourceId: "7",
    eventType: "UPDATE",
    recordKey: "42",
    keys: { profileId: 42 },
    state: { email: "a@b.c", status: "NEW" },
    fields: ["status"],
    previous: { status: "OLD" },
    extra: {},
    version: 2,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
    ...overrides,
  };
}

// --- Generators -----------------------------------------------------------------------------------

const sourceAndType: fc.Arbitrary<{ source: EventSource; eventType: EventType }> = fc
  .constantFrom(...EVENT_SOURCES)
  .chain((source) =>
    fc.constantFrom(...EVENT_TYPES_BY_SOURCE[source]).map((eventType) => ({ source, eventType })),
  );

const value = fc.oneof(
  fc.constantFrom("NEW", "SHIPPED", "", "10", "x"),
  fc.integer({ min: -5, max: 20 }),
);
const attributeMap: fc.Arbitrary<AttributeMap> = fc.dictionary(fc.constantFrom(...FIELDS), value);
const fieldList = fc.uniqueArray(fc.constantFrom(...FIELDS), { maxLength: FIELDS.length });

const anyEvent: fc.Arbitrary<ChangeEvent> = fc
  .record({
    st: sourceAndType,
    entityId: fc.integer({ min: 1, max: 3 }),
    sourceId: fc.constantFrom("7", "8", "f0e1"),
    state: attributeMap,
    fields: fieldList,
    previous: attributeMap,
    declaredEvents: fc.array(fc.constantFrom("order-shipped", "vip"), { maxLength: 2 }),
  })
  .map(({ st, ...rest }) => event({ ...rest, source: st.source, eventType: st.eventType }));

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

/** A subscription that selects exactly the event's entity, source, element and type, nothing more. */
function bareSubscriptionFor(e: ChangeEvent, elementAny: boolean): Subscription {
  return subscription({
    entityId: e.entityId,
    on: e.source,
    onElementId: elementAny ? null : e.sourceId,
    eventType: e.eventType,
  });
}

const passesDeclaredEventRule = (e: ChangeEvent) =>
  !(e.source === "CUSTOM_TABLE" && e.eventType === "UPDATE" && e.declaredEvents.length === 0);

// --- Properties -----------------------------------------------------------------------------------

describe("matchesSubscription properties", () => {
  test("a subscription with no filters matches every event of its entity, source, element and type", () => {
    fc.assert(
      fc.property(anyEvent, fc.boolean(), (e, elementAny) => {
        assert.equal(
          matchesSubscription(bareSubscriptionFor(e, elementAny), e),
          passesDeclaredEventRule(e),
        );
      }),
    );
  });

  test("events of another entity, source, element or type never match", () => {
    fc.assert(
      fc.property(anyEvent, fc.constantFrom("entity", "source", "element", "type"), (e, change) => {
        const s = bareSubscriptionFor(e, false);
        const other =
          change === "entity"
            ? { ...e, entityId: e.entityId + 100 }
            : change === "source"
              ? { ...e, source: EVENT_SOURCES.find((x) => x !== e.source)! }
              : change === "element"
                ? { ...e, sourceId: `${e.sourceId}-other` }
                : {
                    ...e,
                    eventType: (e.eventType === "CREATE" ? "DELETE" : "CREATE") as EventType,
                  };
        assert.equal(matchesSubscription(s, other), false);
      }),
    );
  });

  test("adding an onField or a condition can only narrow what matches", () => {
    fc.assert(
      fc.property(
        anyEvent,
        fieldList,
        fc.constantFrom(...FIELDS),
        fc.option(conditions, { nil: null }),
        conditions,
        (e, onFields, extraField, baseConditions, extraConditions) => {
          const base = { ...bareSubscriptionFor(e, false), onFields, conditions: baseConditions };
          const more = {
            ...base,
            conditions: {
              stateBeforeOperation: [
                ...(baseConditions?.stateBeforeOperation ?? []),
                ...(extraConditions.stateBeforeOperation ?? []),
              ],
              stateAfterOperation: [
                ...(baseConditions?.stateAfterOperation ?? []),
                ...(extraConditions.stateAfterOperation ?? []),
              ],
            },
          };
          // A non-empty onFields list only narrows further when it grows (an empty list means "any").
          if (onFields.length > 0 && !onFields.includes(extraField)) {
            const widerFields = { ...base, onFields: [...onFields, extraField] };
            // More listed fields = more ways to pass: widening the list never loses a match.
            if (matchesSubscription(base, e)) assert.ok(matchesSubscription(widerFields, e));
          }
          if (matchesSubscription(more, e)) assert.ok(matchesSubscription(base, e));
          if (onFields.length === 0 && matchesSubscription({ ...base, onFields: [extraField] }, e))
            assert.ok(matchesSubscription(base, e));
        },
      ),
    );
  });

  test("onFields filter CREATE and UPDATE by the involved fields and are ignored elsewhere", () => {
    fc.assert(
      fc.property(
        anyEvent,
        fc.uniqueArray(fc.constantFrom(...FIELDS), { minLength: 1 }),
        (e, onFields) => {
          const s = { ...bareSubscriptionFor(e, false), onFields };
          const involved = onFields.some((f) => e.fields.includes(f));
          const filtered = e.eventType === "CREATE" || e.eventType === "UPDATE";
          assert.equal(
            matchesSubscription(s, e),
            passesDeclaredEventRule(e) && (!filtered || involved),
          );
        },
      ),
    );
  });

  test("matching ignores isActive and state (delivery decides whether to send)", () => {
    fc.assert(
      fc.property(anyEvent, (e) => {
        const s = bareSubscriptionFor(e, true);
        const off: Subscription = { ...s, isActive: false, state: "DISABLED" };
        assert.equal(matchesSubscription(off, e), matchesSubscription(s, e));
      }),
    );
  });
});

// --- Examples -------------------------------------------------------------------------------------

describe("matchesSubscription examples", () => {
  test("onElementId null listens to every element of a trigger source", () => {
    const s = subscription({ on: "ETL", onElementId: null, eventType: "FINISHED" });
    const e = event({ source: "ETL", sourceId: "etl-9", eventType: "FINISHED", fields: [] });
    assert.equal(matchesSubscription(s, e), true);
    assert.equal(matchesSubscription({ ...s, onElementId: "etl-1" }, e), false);
    assert.equal(matchesSubscription({ ...s, onElementId: "etl-9" }, e), true);
  });

  test("onFields: UPDATE passes when a listed field changed, not when only others did", () => {
    const s = subscription({ onFields: ["email", "city"] });
    assert.equal(matchesSubscription(s, event({ fields: ["status"] })), false);
    assert.equal(matchesSubscription(s, event({ fields: ["status", "city"] })), true);
  });

  test("onFields are ignored for DELETE, UPDATED_SEGMENT and UPDATED_SUBSCRIPTION", () => {
    for (const eventType of ["DELETE", "UPDATED_SEGMENT", "UPDATED_SUBSCRIPTION"] as const) {
      const s = subscription({ eventType, onFields: ["email"] });
      assert.equal(matchesSubscription(s, event({ eventType, fields: [] })), true, eventType);
    }
  });

  test("a custom-table UPDATE passes only when a declared event fired", () => {
    const s = subscription({ on: "CUSTOM_TABLE", onElementId: "t-1", eventType: "UPDATE" });
    const e = event({ source: "CUSTOM_TABLE", sourceId: "t-1", eventType: "UPDATE" });
    assert.equal(matchesSubscription(s, e), false);
    assert.equal(matchesSubscription(s, { ...e, declaredEvents: ["order-shipped"] }), true);
    // The rule is about custom tables: a profile-table UPDATE needs no declared event.
    assert.equal(matchesSubscription(subscription(), event()), true);
  });

  test("conditions see the state before (previous values put back) and after an UPDATE", () => {
    const shipped: MatchingConditions = {
      stateBeforeOperation: [{ attribute: "status", operator: "!=", value: "SHIPPED" }],
      stateAfterOperation: [{ attribute: "status", operator: "=", value: "SHIPPED" }],
    };
    const s = subscription({ conditions: shipped });
    const toShipped = event({ state: { status: "SHIPPED" }, previous: { status: "NEW" } });
    const stillShipped = event({
      state: { status: "SHIPPED", amount: 3 },
      previous: { amount: 2 },
    });
    assert.equal(matchesSubscription(s, toShipped), true);
    assert.equal(matchesSubscription(s, stillShipped), false);
  });

  test("CREATE has no state before; DELETE has no state after", () => {
    assert.deepEqual(eventStates(event({ eventType: "CREATE", state: { a: 1 } })), {
      before: null,
      after: { a: 1 },
    });
    assert.deepEqual(eventStates(event({ eventType: "DELETE", state: { a: 1 } })), {
      before: { a: 1 },
      after: null,
    });
    const created = subscription({
      eventType: "CREATE",
      conditions: { stateBeforeOperation: [{ attribute: "status", operator: "IS_NULL" }] },
    });
    assert.equal(matchesSubscription(created, event({ eventType: "CREATE" })), true);
    const deleted = subscription({
      eventType: "DELETE",
      conditions: { stateAfterOperation: [{ attribute: "status", operator: "=", value: "NEW" }] },
    });
    assert.equal(matchesSubscription(deleted, event({ eventType: "DELETE" })), false);
  });
});
