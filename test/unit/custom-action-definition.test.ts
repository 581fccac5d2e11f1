/**
 * A custom action's definition (SPEC §7.4): what parseCustomAction keeps of a body, what it refuses
 * (every problem with its path), the keys it ignores, PATCH as a merge into the stored definition,
 * and which changes would break an active scenario's blocks.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CustomActionDefinition } from "../../src/domain/custom-action.js";
import {
  applyCustomActionPatch,
  blocksReachingAction,
  changeBreaksScenarios,
  describeHold,
  parseCustomAction,
  readCustomAction,
  scenariosHoldingAction,
} from "../../src/domain/custom-action-definition.js";
import { HeraldError } from "../../src/domain/errors.js";
import type { ScenarioBlock } from "../../src/domain/scenario.js";

/** The paths of the problems a body is refused with (fails when it is accepted). */
function refused(body: unknown): string[] {
  try {
    parseCustomAction(body);
  } catch (error) {
    assert.ok(error instanceof HeraldError, String(error));
    assert.equal(error.code, "HERALD_INVALID_CUSTOM_ACTION");
    assert.equal(error.status, 400);
    assert.match(error.message, /^The custom action is invalid: /);
    return error.details.map((d) => d.path);
  }
  assert.fail(`accepted: ${JSON.stringify(body)}`);
}

describe("parseCustomAction", () => {
  test("keeps name, description and typed parameters; STRING and not mandatory by default", () => {
    const definition = parseCustomAction({
      name: " send-to-crm ",
      description: "Tells the CRM",
      parameters: [
        { name: "campaignId", valueType: "STRING", mandatory: true },
        { name: "points", valueType: "integer" },
        { name: "note" },
      ],
    });
    assert.deepEqual(definition, {
      name: "send-to-crm",
      description: "Tells the CRM",
      parameters: [
        { name: "campaignId", valueType: "STRING", mandatory: true },
        { name: "points", valueType: "INTEGER", mandatory: false },
        { name: "note", valueType: "STRING", mandatory: false },
      ],
    });
  });

  test("a name alone is a whole action: no description, no parameters", () => {
    assert.deepEqual(parseCustomAction({ name: "ping.v2_x" }), {
      name: "ping.v2_x",
      description: null,
      parameters: [],
    });
    assert.equal(parseCustomAction({ name: "a", description: "" }).description, null);
  });

  test("every problem is reported with its path", () => {
    assert.deepEqual(
      refused({
        name: "has space",
        description: 5,
        parameters: [
          { name: "a", valueType: "MONEY" },
          { name: "a" },
          { name: "b.c" },
          { valueType: "STRING" },
          "x",
          { name: "m", mandatory: "yes" },
        ],
      }),
      [
        "name",
        "description",
        "parameters[0].valueType",
        "parameters[1].name",
        "parameters[2].name",
        "parameters[3].name",
        "parameters[4]",
        "parameters[5].mandatory",
      ],
    );
  });

  test("refuses a missing, empty, too long or digits-only name", () => {
    assert.deepEqual(refused({}), ["name"]);
    assert.deepEqual(refused({ name: "  " }), ["name"]);
    assert.deepEqual(refused({ name: "x".repeat(101) }), ["name"]);
    assert.deepEqual(refused({ name: "12" }), ["name"]);
    assert.equal(parseCustomAction({ name: "x".repeat(100) }).name.length, 100);
  });

  test("refuses parameter names every JavaScript object already has", () => {
    const names = ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"];
    assert.deepEqual(
      refused({
        name: "a",
        parameters: [{ name: "campaignId" }, ...names.map((name) => ({ name }))],
      }),
      names.map((_, i) => `parameters[${i + 1}].name`),
    );
    try {
      parseCustomAction({ name: "a", parameters: [{ name: "constructor", mandatory: true }] });
      assert.fail("accepted");
    } catch (error) {
      assert.ok(error instanceof HeraldError);
      assert.match(error.details[0]!.message, /'constructor' is a name every JavaScript object/);
    }
    // Only the exact names: a longer one is fine.
    assert.equal(
      parseCustomAction({ name: "a", parameters: [{ name: "constructorId" }] }).parameters.length,
      1,
    );
  });

  test("refuses what is not an object, and parameters that are not a list", () => {
    assert.deepEqual(refused(null), [""]);
    assert.deepEqual(refused([]), [""]);
    assert.deepEqual(refused("send"), [""]);
    assert.deepEqual(refused({ name: "a", parameters: { campaignId: "STRING" } }), ["parameters"]);
    assert.deepEqual(
      refused({
        name: "a",
        parameters: Array.from({ length: 101 }, (_, i) => ({ name: `p${i}` })),
      }),
      ["parameters"],
    );
  });

  test("unknown keys are ignored with a warning; the answer's own keys quietly", () => {
    const { definition, warnings } = readCustomAction({
      name: "a",
      id: "4",
      createdAt: "2024-01-01T00:00:00Z",
      _links: {},
      colour: "blue",
      parameters: [{ name: "p", valueType: "DATE", format: "yyyy" }],
    });
    assert.deepEqual(definition.parameters, [{ name: "p", valueType: "DATE", mandatory: false }]);
    assert.deepEqual(
      warnings.map((w) => w.path),
      ["colour", "parameters[0].format"],
    );
  });
});

describe("applyCustomActionPatch", () => {
  const current: CustomActionDefinition = {
    name: "send-to-crm",
    description: "Tells the CRM",
    parameters: [{ name: "campaignId", valueType: "STRING", mandatory: true }],
  };

  test("the keys given replace the stored ones; the others stay", () => {
    assert.deepEqual(applyCustomActionPatch(current, { description: "New" }).definition, {
      ...current,
      description: "New",
    });
    assert.deepEqual(
      applyCustomActionPatch(current, { parameters: [{ name: "x", valueType: "BOOLEAN" }] })
        .definition.parameters,
      [{ name: "x", valueType: "BOOLEAN", mandatory: false }],
    );
    assert.equal(
      applyCustomActionPatch(current, { description: null }).definition.description,
      null,
    );
    assert.deepEqual(applyCustomActionPatch(current, {}).definition, current);
  });

  test("the result is checked as a whole", () => {
    assert.throws(
      () => applyCustomActionPatch(current, { name: null }),
      (error: HeraldError) => error.code === "HERALD_INVALID_CUSTOM_ACTION",
    );
    assert.throws(
      () => applyCustomActionPatch(current, ["name"]),
      (error: HeraldError) => error.code === "HERALD_INVALID_CUSTOM_ACTION",
    );
  });
});

describe("changeBreaksScenarios", () => {
  const block = (
    id: string,
    customActionId: string,
    parameters: Record<string, string | number | boolean>,
  ): ScenarioBlock => ({ id, type: "CUSTOM_ACTION", customActionId, parameters, next: "end" });
  const scenarios = [
    {
      id: "3",
      name: "welcome",
      definition: {
        blocks: [
          block("crm", "7", { campaignId: "987654", points: 5 }),
          block("other", "8", { anything: "x" }),
          { id: "end", type: "EXIT" } as ScenarioBlock,
        ],
      },
    },
  ];
  const params = (...list: CustomActionDefinition["parameters"]) => ({ parameters: list });

  test("a change that still fits every block of the action breaks nothing", () => {
    const fits = params(
      { name: "campaignId", valueType: "STRING", mandatory: true },
      { name: "points", valueType: "LONG", mandatory: false },
      { name: "extra", valueType: "STRING", mandatory: false },
    );
    assert.deepEqual(changeBreaksScenarios(fits, "7", scenarios), []);
    // Blocks of other actions are not this action's concern.
    assert.deepEqual(changeBreaksScenarios(params(), "9", scenarios), []);
  });

  test("a removed parameter, a new mandatory one, a type the value no longer fits", () => {
    const problems = changeBreaksScenarios(
      params(
        { name: "campaignId", valueType: "BOOLEAN", mandatory: true },
        { name: "segment", valueType: "STRING", mandatory: true },
      ),
      "7",
      scenarios,
    );
    assert.deepEqual(
      problems.map((p) => p.path),
      [
        "scenarios/3/blocks/crm.parameters.campaignId",
        "scenarios/3/blocks/crm.parameters.points",
        "scenarios/3/blocks/crm.parameters.segment",
      ],
    );
    for (const problem of problems)
      assert.match(problem.message, /in block 'crm' of scenario 'welcome'$/);
    assert.match(problems[2]!.message, /^is mandatory/);
  });

  test("a new mandatory parameter named like an Object.prototype property is not given by a block", () => {
    // The definition is built here, past parseCustomAction (which refuses the name): the check
    // must not take the inherited `constructor` of the block's parameters for a value.
    const problems = changeBreaksScenarios(
      params(
        { name: "campaignId", valueType: "STRING", mandatory: false },
        { name: "points", valueType: "INTEGER", mandatory: false },
        { name: "constructor", valueType: "STRING", mandatory: true },
      ),
      "7",
      scenarios,
    );
    assert.deepEqual(
      problems.map((p) => p.path),
      ["scenarios/3/blocks/crm.parameters.constructor"],
    );
  });
});

describe("scenariosHoldingAction", () => {
  // before → check → crm (action 7) → after → end; check's otherwise loops back to before.
  const blocks: ScenarioBlock[] = [
    { id: "before", type: "WAIT", duration: "PT1H", next: "check" },
    { id: "check", type: "FILTER", conditions: [], next: "crm", otherwise: "before" },
    { id: "crm", type: "CUSTOM_ACTION", customActionId: "7", parameters: {}, next: "after" },
    { id: "after", type: "WAIT", duration: "P1D", next: "again" },
    { id: "again", type: "FILTER", conditions: [], next: "end", otherwise: "check" },
    { id: "side", type: "WAIT", duration: "PT1H", next: "end" },
    { id: "end", type: "EXIT" },
  ];
  const scenario = (status: "ACTIVE" | "INACTIVE", liveRuns: Record<string, number>, id = "3") => ({
    id,
    name: `s${id}`,
    status,
    definition: { blocks },
    liveRuns,
  });

  test("the blocks from which a run can still reach the action's block, loops included", () => {
    assert.deepEqual([...blocksReachingAction({ blocks }, "7")].sort(), [
      "after",
      "again",
      "before",
      "check",
      "crm",
    ]);
    assert.deepEqual([...blocksReachingAction({ blocks }, "8")], []);
  });

  test("ACTIVE holds; INACTIVE holds only with live runs that can reach the block", () => {
    assert.deepEqual(
      scenariosHoldingAction("7", [scenario("ACTIVE", {})]).map((s) => s.hold),
      [{ kind: "active" }],
    );
    assert.deepEqual(scenariosHoldingAction("7", [scenario("INACTIVE", {})]), []);
    assert.deepEqual(scenariosHoldingAction("7", [scenario("INACTIVE", { side: 4, end: 0 })]), []);
    assert.deepEqual(scenariosHoldingAction("8", [scenario("INACTIVE", { before: 4 })]), []);
    const [held] = scenariosHoldingAction("7", [
      scenario("INACTIVE", { after: 2, side: 5, before: 1 }, "4"),
    ]);
    assert.deepEqual(held!.hold, {
      kind: "runs",
      runs: 3,
      blocks: ["before", "after"],
      actionBlocks: ["crm"],
    });
    assert.equal(
      describeHold(held!),
      "scenario 's4' (id 4) is INACTIVE, but 3 of its runs still going (in blocks 'before', 'after') will reach block 'crm', which triggers it",
    );
  });
});
