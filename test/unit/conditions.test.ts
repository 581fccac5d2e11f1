import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { conditionHolds, conditionsHold, validateConditions } from "../../src/domain/conditions.js";

describe("conditions", () => {
  test("numbers compare as numbers, whether stored as numbers or numeric strings", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer(), fc.boolean(), (a, b, asString) => {
        const state = { n: asString ? String(a) : a };
        assert.equal(
          conditionHolds({ attribute: "n", operator: "<", value: b }, state, null),
          a < b,
        );
        assert.equal(
          conditionHolds({ attribute: "n", operator: ">=", value: String(b) }, state, null),
          a >= b,
        );
        assert.equal(
          conditionHolds({ attribute: "n", operator: "=", value: b }, state, null),
          a === b,
        );
      }),
    );
  });

  test("a missing state reads as every attribute null", () => {
    assert.equal(conditionHolds({ attribute: "s", operator: "IS_NULL" }, null, null), true);
    assert.equal(conditionHolds({ attribute: "s", operator: "!=", value: "X" }, null, null), true);
    assert.equal(conditionHolds({ attribute: "s", operator: "=", value: "X" }, null, null), false);
    assert.equal(conditionHolds({ attribute: "s", operator: "<", value: 3 }, null, null), false);
  });

  test("CHANGED compares with the other state; IN looks for any listed value", () => {
    assert.equal(
      conditionHolds({ attribute: "s", operator: "CHANGED" }, { s: "A" }, { s: "B" }),
      true,
    );
    assert.equal(
      conditionHolds({ attribute: "s", operator: "CHANGED" }, { s: "A" }, { s: "A" }),
      false,
    );
    assert.equal(conditionHolds({ attribute: "s", operator: "CHANGED" }, { s: "A" }, null), true);
    assert.equal(
      conditionHolds({ attribute: "s", operator: "IN", value: ["A", "B"] }, { s: "B" }, null),
      true,
    );
    assert.equal(
      conditionHolds({ attribute: "s", operator: "IN", value: ["A"] }, { s: "C" }, null),
      false,
    );
  });

  test("lists are AND-ed; no conditions always hold", () => {
    assert.equal(conditionsHold(undefined, null, null), true);
    const both = {
      stateBeforeOperation: [{ attribute: "s", operator: "=" as const, value: "A" }],
      stateAfterOperation: [{ attribute: "s", operator: "=" as const, value: "B" }],
    };
    assert.equal(conditionsHold(both, { s: "A" }, { s: "B" }), true);
    assert.equal(conditionsHold(both, { s: "A" }, { s: "A" }), false);
  });

  test("validation names unknown attributes, bad operators and missing values", () => {
    const problems = validateConditions(
      {
        stateAfterOperation: [
          { attribute: "ghost", operator: "=", value: 1 },
          { attribute: "s", operator: "~" as never, value: 1 },
          { attribute: "s", operator: ">" },
          { attribute: "s", operator: "IN", value: "A" },
        ],
      },
      ["s"],
      "conditions",
    );
    assert.deepEqual(
      problems.map((p) => p.path),
      [
        "conditions.stateAfterOperation[0].attribute",
        "conditions.stateAfterOperation[1].operator",
        "conditions.stateAfterOperation[2].value",
        "conditions.stateAfterOperation[3].value",
      ],
    );
  });
});
