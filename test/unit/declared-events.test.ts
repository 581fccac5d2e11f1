import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { AttributeMap } from "../../src/domain/change-event.js";
import type { Condition } from "../../src/domain/conditions.js";
import type { DeclaredEvent, TriggerRule } from "../../src/domain/data-table.js";
import type { OperationFacts } from "../../src/domain/declared-events.js";
import { firedDeclaredEvents } from "../../src/domain/declared-events.js";

const NAMES = ["status", "amount", "city"] as const;
const VALUES = ["NEW", "SHIPPED", null] as const;

const state = fc.record({
  status: fc.constantFrom(...VALUES),
  amount: fc.constantFrom(...VALUES),
  city: fc.constantFrom(...VALUES),
}) as fc.Arbitrary<AttributeMap>;

const condition: fc.Arbitrary<Condition> = fc.record({
  attribute: fc.constantFrom(...NAMES),
  operator: fc.constantFrom("=", "!=", "IS_NULL", "IS_NOT_NULL", "CHANGED") as fc.Arbitrary<
    Condition["operator"]
  >,
  value: fc.constantFrom("NEW", "SHIPPED"),
});

const rule: fc.Arbitrary<TriggerRule> = fc.record(
  {
    onOperation: fc.constantFrom("CREATE", "UPDATE", "DELETE") as fc.Arbitrary<
      TriggerRule["onOperation"]
    >,
    onAnyAttribute: fc.subarray([...NAMES]),
    matchingConditions: fc.record(
      {
        stateBeforeOperation: fc.array(condition, { maxLength: 2 }),
        stateAfterOperation: fc.array(condition, { maxLength: 2 }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ["onOperation"] },
);

const events = fc.array(
  fc.record({
    name: fc.string({ minLength: 1, maxLength: 4 }),
    triggerRules: fc.array(rule, { minLength: 1, maxLength: 3 }),
  }),
  {
    maxLength: 4,
  },
) as fc.Arbitrary<DeclaredEvent[]>;

/** Reference model, written independently: plain loops over the spec's words. */
function valueOf(s: AttributeMap | null, name: string): string | null {
  const v = s ? s[name] : null;
  return v === undefined || v === null || v === "" ? null : String(v);
}
function holds(c: Condition, s: AttributeMap | null, other: AttributeMap | null): boolean {
  const v = valueOf(s, c.attribute);
  if (c.operator === "=") return v === c.value;
  if (c.operator === "!=") return v !== c.value;
  if (c.operator === "IS_NULL") return v === null;
  if (c.operator === "IS_NOT_NULL") return v !== null;
  return v !== valueOf(other, c.attribute);
}
function reference(declared: DeclaredEvent[], f: OperationFacts): string[] {
  const fired: string[] = [];
  for (const e of declared) {
    let any = false;
    for (const r of e.triggerRules) {
      if (r.onOperation !== f.operation) continue;
      const listed = r.onAnyAttribute ?? [];
      let involved = listed.length === 0;
      for (const n of listed) if (f.provided.includes(n) || f.changed.includes(n)) involved = true;
      if (!involved) continue;
      let ok = true;
      for (const c of r.matchingConditions?.stateBeforeOperation ?? [])
        ok = ok && holds(c, f.before, f.after);
      for (const c of r.matchingConditions?.stateAfterOperation ?? [])
        ok = ok && holds(c, f.after, f.before);
      if (ok) any = true;
    }
    if (any) fired.push(e.name);
  }
  return fired;
}

describe("declared events", () => {
  test("evaluation agrees with a reference model on random tables and operations", () => {
    fc.assert(
      fc.property(
        events,
        state,
        state,
        fc.constantFrom("CREATE", "UPDATE", "DELETE") as fc.Arbitrary<OperationFacts["operation"]>,
        fc.subarray([...NAMES]),
        (declared, before, after, operation, provided) => {
          const changed = NAMES.filter((n) => valueOf(before, n) !== valueOf(after, n));
          const facts: OperationFacts = {
            operation,
            before: operation === "CREATE" ? null : before,
            after: operation === "DELETE" ? null : after,
            provided,
            changed,
          };
          assert.deepEqual(firedDeclaredEvents(declared, facts), reference(declared, facts));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("the SPEC example fires on the transition to SHIPPED only", () => {
    const shipped: DeclaredEvent = {
      name: "order-shipped",
      triggerRules: [
        {
          onOperation: "UPDATE",
          onAnyAttribute: ["status"],
          matchingConditions: {
            stateBeforeOperation: [{ attribute: "status", operator: "!=", value: "SHIPPED" }],
            stateAfterOperation: [{ attribute: "status", operator: "=", value: "SHIPPED" }],
          },
        },
      ],
    };
    const fire = (before: AttributeMap, after: AttributeMap, changed: string[]) =>
      firedDeclaredEvents([shipped], {
        operation: "UPDATE",
        before,
        after,
        provided: changed,
        changed,
      });
    assert.deepEqual(fire({ status: "NEW" }, { status: "SHIPPED" }, ["status"]), ["order-shipped"]);
    assert.deepEqual(fire({ status: "SHIPPED" }, { status: "SHIPPED", amount: 3 }, ["amount"]), []);
    assert.deepEqual(
      fire({ status: "NEW", amount: 1 }, { status: "NEW", amount: 3 }, ["amount"]),
      [],
    );
    assert.deepEqual(
      firedDeclaredEvents([shipped], {
        operation: "CREATE",
        before: null,
        after: { status: "SHIPPED" },
        provided: ["status"],
        changed: ["status"],
      }),
      [],
    );
  });
});
