/**
 * The parameters given to a custom action (SPEC §7.4): checkActionParameters (what the trigger call,
 * a CUSTOM_ACTION block and a scenario's validation refuse) and renderActionParameters (the texts
 * the TRIGGER payload shows), and the payload fields they end up in (triggerState).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { CustomActionDefinition } from "../../src/domain/custom-action.js";
import {
  checkActionParameters,
  renderActionParameters,
  triggerLinks,
  triggerState,
} from "../../src/domain/custom-action.js";
import { VALUE_TYPES } from "../../src/domain/data-table.js";

const action: Pick<CustomActionDefinition, "parameters"> = {
  parameters: [
    { name: "campaignId", valueType: "STRING", mandatory: true },
    { name: "points", valueType: "INTEGER", mandatory: false },
    { name: "ratio", valueType: "NUMBER", mandatory: false },
    { name: "vip", valueType: "BOOLEAN", mandatory: false },
    { name: "since", valueType: "DATE", mandatory: false },
    { name: "at", valueType: "TIMESTAMP", mandatory: false },
    { name: "big", valueType: "LONG", mandatory: false },
  ],
};

describe("checkActionParameters", () => {
  test("valid values of every type, typed or as text, give no problem", () => {
    assert.deepEqual(
      checkActionParameters(
        action,
        {
          campaignId: 987654,
          points: "12",
          ratio: 0.5,
          vip: "true",
          since: "2024-02-29",
          at: "2024-02-29T10:00:00Z",
          big: 9007199254740991,
        },
        "parameters",
      ),
      [],
    );
    assert.deepEqual(checkActionParameters(action, { campaignId: "x" }, "parameters"), []);
  });

  test("an unknown parameter names the action's parameters", () => {
    const problems = checkActionParameters(
      action,
      { campaignId: "x", colour: "red" },
      "parameters",
    );
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.path, "parameters.colour");
    assert.match(problems[0]!.message, /not a parameter .*campaignId, points/);
    const none = checkActionParameters({ parameters: [] }, { colour: "red" }, "p");
    assert.match(none[0]!.message, /\(its parameters: none\)/);
  });

  test("a mandatory parameter missing or null is a problem; an optional one may be left out", () => {
    for (const given of [{}, { campaignId: null }])
      assert.deepEqual(checkActionParameters(action, given, "parameters"), [
        { path: "parameters.campaignId", message: "is mandatory" },
      ]);
    assert.deepEqual(
      checkActionParameters(action, { campaignId: "x", points: null }, "parameters"),
      [],
    );
  });

  test("values that do not fit their type, and values that are not scalars", () => {
    const problems = checkActionParameters(
      action,
      {
        campaignId: "x",
        points: "twelve",
        ratio: "1,5",
        vip: "maybe",
        since: "2023-02-29",
        at: "yesterday",
        big: 1.5,
      },
      "blocks[2].parameters",
    );
    assert.deepEqual(
      problems.map((p) => p.path),
      ["points", "ratio", "vip", "since", "at", "big"].map((n) => `blocks[2].parameters.${n}`),
    );
    for (const problem of problems)
      assert.match(problem.message, /\((INTEGER|NUMBER|BOOLEAN|DATE|TIMESTAMP|LONG)\)$/);
    assert.deepEqual(
      checkActionParameters(action, { campaignId: { id: 1 } }, "parameters").map((p) => p.message),
      ["must be a string, number or boolean"],
    );
    assert.equal(checkActionParameters(action, { campaignId: ["a"] }, "parameters").length, 1);
  });

  test("names of Object.prototype's properties are read from the values' own keys only", () => {
    // parseCustomAction refuses such names now; an action stored before may still hold them.
    const inherited: Pick<CustomActionDefinition, "parameters"> = {
      parameters: ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"].map(
        (name) => ({ name, valueType: "STRING" as const, mandatory: true }),
      ),
    };
    assert.deepEqual(
      checkActionParameters(inherited, {}, "parameters").map((p) => `${p.path} ${p.message}`),
      ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"].map(
        (name) => `parameters.${name} is mandatory`,
      ),
    );
    // As JSON.parse gives them: "__proto__" is an own key there.
    const given = JSON.parse(
      '{"constructor": "c", "toString": "t", "valueOf": "v", "hasOwnProperty": "h", "__proto__": "p"}',
    ) as Record<string, unknown>;
    assert.deepEqual(checkActionParameters(inherited, given, "parameters"), []);
  });
});

describe("renderActionParameters", () => {
  test("each value in its type's stored form, as text; parameters not given are left out", () => {
    assert.deepEqual(
      renderActionParameters(action, {
        campaignId: 987654,
        points: "012",
        ratio: "0.50",
        vip: "TRUE",
        since: "2024-02-29",
        ignoredNull: null,
        big: null,
      }),
      { campaignId: "987654", points: "12", ratio: "0.5", vip: "true", since: "2024-02-29" },
    );
  });

  test("a parameter named like an Object.prototype property is never an inherited function", () => {
    const inherited: Pick<CustomActionDefinition, "parameters"> = {
      parameters: [
        { name: "constructor", valueType: "STRING", mandatory: false },
        { name: "toString", valueType: "STRING", mandatory: false },
        { name: "__proto__", valueType: "STRING", mandatory: false },
      ],
    };
    assert.deepEqual(renderActionParameters(inherited, {}), {});
    const rendered = renderActionParameters(
      inherited,
      JSON.parse('{"constructor": 7, "__proto__": "p"}') as Record<string, unknown>,
    );
    assert.deepEqual(Object.keys(rendered), ["constructor", "__proto__"]);
    assert.equal(rendered.constructor, "7");
    assert.ok(Object.hasOwn(rendered, "__proto__"));
    assert.equal(Object.getOwnPropertyDescriptor(rendered, "__proto__")?.value, "p");
  });

  test("property: whatever checks clean renders to one string per given parameter", () => {
    const parameter = fc.record({
      valueType: fc.constantFrom(...VALUE_TYPES),
      value: fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean()),
    });
    fc.assert(
      fc.property(fc.array(parameter, { maxLength: 6 }), (list) => {
        const definition = {
          parameters: list.map((p, i) => ({
            name: `p${i}`,
            valueType: p.valueType,
            mandatory: false,
          })),
        };
        const given = Object.fromEntries(list.map((p, i) => [`p${i}`, p.value]));
        if (checkActionParameters(definition, given, "parameters").length > 0) return;
        const rendered = renderActionParameters(definition, given);
        assert.deepEqual(Object.keys(rendered), Object.keys(given));
        for (const text of Object.values(rendered)) assert.equal(typeof text, "string");
      }),
    );
  });
});

describe("triggerState", () => {
  const profile = {
    profileId: 7,
    creationMoment: "2024-01-01T00:00:00.000Z",
    updateMoment: "2024-01-02T00:00:00.000Z",
    emailAddress: "ann@example.com",
    points: 12,
    vip: false,
    interests: ["golf", "tea, green"],
    nothing: null,
  };

  test("SPEC §7.4's flat keys, texts; no scenario keys without a run", () => {
    assert.deepEqual(
      triggerState({
        action: { id: "3", name: "send-to-crm" },
        parameters: { campaignId: "987654" },
        profile,
      }),
      {
        "actionParameters.campaignId": "987654",
        "profileAttributes.profileId": "7",
        "profileAttributes.creationMoment": "2024-01-01T00:00:00.000Z",
        "profileAttributes.updateMoment": "2024-01-02T00:00:00.000Z",
        "profileAttributes.emailAddress": "ann@example.com",
        "profileAttributes.points": "12",
        "profileAttributes.vip": "false",
        "profileAttributes.interests": ["golf", "tea, green"],
        "customAction.id": "3",
        "customAction.name": "send-to-crm",
      },
    );
  });

  test("a scenario run adds scenario.id and scenario.runId", () => {
    const state = triggerState({
      action: { id: "3", name: "a" },
      parameters: {},
      profile: { profileId: 1 },
      run: { scenarioId: "5", runId: "99" },
    });
    assert.equal(state["scenario.id"], "5");
    assert.equal(state["scenario.runId"], "99");
  });

  test("links to the profile and the action, with the entity's name encoded", () => {
    assert.deepEqual(triggerLinks("my entity", "3", "12", 7), {
      profile: { href: "/profiles/v4/entity/my%20entity/table/12/profile/7" },
      customAction: { href: "/v5/entities/my%20entity/custom-actions/3" },
    });
  });
});
