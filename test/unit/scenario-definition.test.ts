/**
 * Scenario definitions (src/domain/scenario-definition.ts and the block and graph checks beside
 * it): SPEC §7.4's welcome flow as it is stored, every start type and block, and the bad input a
 * definition is refused for, each problem with its path. Many bad graphs.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CustomAction } from "../../src/domain/custom-action.js";
import type { DataTable } from "../../src/domain/data-table.js";
import { HeraldError } from "../../src/domain/errors.js";
import type { ScenarioContext } from "../../src/domain/scenario-definition.js";
import { welcomeScenario } from "../helpers/scenario-fixtures.js";
import {
  blocksChanged,
  customActionIdsOf,
  MAX_BLOCKS,
  parseScenario,
  profileTableOf,
  readScenario,
  scenarioBody,
} from "../../src/domain/scenario-definition.js";

const attribute = (name: string, valueType: string, extra: Record<string, unknown> = {}) => ({
  name,
  type: "CUSTOM",
  valueType,
  unique: false,
  mandatory: false,
  multiValued: false,
  ...extra,
});

const CUSTOMERS = {
  id: "12",
  entityId: 1,
  kind: "PROFILE_TABLE",
  name: "Customers",
  version: 1,
  attributes: [
    attribute("customerId", "STRING", { unique: true }),
    attribute("emailAddress", "STRING", { type: "EMAIL_ADDRESS", mandatory: true }),
    attribute("tier", "STRING"),
    attribute("points", "INTEGER"),
    attribute("birthDate", "DATE"),
    attribute("lastOrderAt", "TIMESTAMP"),
    attribute("tags", "STRING", { multiValued: true }),
    attribute("holidays", "DATE", { multiValued: true }),
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] },
  ],
  eventsToTrigger: [],
} as DataTable;

const SEND_TO_CRM: CustomAction = {
  id: "7",
  entityId: 1,
  name: "send-to-crm",
  description: null,
  parameters: [
    { name: "campaignId", valueType: "STRING", mandatory: true },
    { name: "priority", valueType: "INTEGER", mandatory: false },
  ],
  createdAt: new Date(),
  updatedAt: new Date(),
};

const CONTEXT: ScenarioContext = {
  table: CUSTOMERS,
  customActions: (key) => (key === "7" || key === "send-to-crm" ? SEND_TO_CRM : undefined),
};

/** SPEC §7.4's example. */
const WELCOME = welcomeScenario();

type Block = Record<string, unknown>;
const EXIT: Block = { id: "end", type: "EXIT" };
const api = (blocks: Block[], extra: Record<string, unknown> = {}) => ({
  name: "s",
  profileTable: "Customers",
  start: { type: "API" },
  blocks,
  ...extra,
});

/** The problems a body is refused for (asserts that it is refused, as HERALD_INVALID_SCENARIO). */
function problemsOf(body: unknown): { path: string; message: string }[] {
  try {
    parseScenario(body, CONTEXT);
  } catch (error) {
    assert.ok(error instanceof HeraldError);
    assert.equal(error.code, "HERALD_INVALID_SCENARIO");
    assert.equal(error.status, 400);
    return error.details;
  }
  assert.fail("the definition was accepted");
}

/** Asserts that the body is refused with exactly these paths, and that each message says `hint`. */
function refused(body: unknown, expected: [path: string, hint: RegExp][]) {
  const problems = problemsOf(body);
  assert.deepEqual(
    problems.map((p) => p.path).sort(),
    expected.map(([path]) => path).sort(),
    JSON.stringify(problems, null, 1),
  );
  for (const [path, hint] of expected)
    assert.ok(
      problems.some((p) => p.path === path && hint.test(p.message)),
      `${path}: ${JSON.stringify(problems)}`,
    );
}

describe("parseScenario: what is kept", () => {
  test("SPEC §7.4's welcome flow, stored with the table and the custom action by id", () => {
    const definition = parseScenario(WELCOME, CONTEXT);
    assert.deepEqual(definition, {
      name: "welcome",
      tableId: "12",
      reentry: "AFTER_EXIT",
      start: { type: "DATA_EVENT", eventType: "CREATE", onFields: [], conditions: {} },
      blocks: [
        { id: "wait", type: "WAIT", duration: "PT1H", next: "gold" },
        {
          id: "gold",
          type: "FILTER",
          conditions: [{ attribute: "tier", operator: "=", value: "Gold" }],
          next: "crm",
          otherwise: "end",
        },
        {
          id: "crm",
          type: "CUSTOM_ACTION",
          customActionId: "7",
          parameters: { campaignId: "987654" },
          next: "tag",
        },
        {
          id: "tag",
          type: "UPDATE_PROFILE",
          attributes: {},
          subscriptions: {},
          segmentations: { Active: "Active" },
          next: "end",
        },
        { id: "end", type: "EXIT" },
      ],
    });
    assert.deepEqual(customActionIdsOf(definition), ["7"]);
  });

  test("defaults: reentry AFTER_EXIT; DATA_EVENT onFields and conditions empty", () => {
    const definition = parseScenario(
      {
        name: " welcome ",
        profileTableId: 12,
        start: { type: "data_event", eventType: "update" },
        blocks: [EXIT],
      },
      CONTEXT,
    );
    assert.equal(definition.name, "welcome");
    assert.equal(definition.reentry, "AFTER_EXIT");
    assert.deepEqual(definition.start, {
      type: "DATA_EVENT",
      eventType: "UPDATE",
      onFields: [],
      conditions: {},
    });
  });

  test("every re-entry policy", () => {
    for (const reentry of ["NEVER", "AFTER_EXIT", "ALWAYS"])
      assert.equal(parseScenario(api([EXIT], { reentry }), CONTEXT).reentry, reentry);
  });

  test("DATA_EVENT with onFields and conditions on both states (CHANGED allowed); a list means after", () => {
    const start = parseScenario(
      api([EXIT], {
        start: {
          type: "DATA_EVENT",
          eventType: "UPDATE",
          onFields: ["tier", "updateMoment"],
          conditions: {
            stateBeforeOperation: [{ attribute: "tier", operator: "!=", value: "Gold" }],
            stateAfterOperation: [{ attribute: "tier", operator: "changed" }],
          },
        },
      }),
      CONTEXT,
    ).start;
    assert.deepEqual(start, {
      type: "DATA_EVENT",
      eventType: "UPDATE",
      onFields: ["tier", "updateMoment"],
      conditions: {
        stateBeforeOperation: [{ attribute: "tier", operator: "!=", value: "Gold" }],
        stateAfterOperation: [{ attribute: "tier", operator: "CHANGED" }],
      },
    });
    const listed = parseScenario(
      api([EXIT], {
        start: {
          type: "DATA_EVENT",
          eventType: "CREATE",
          conditions: [{ attribute: "points", operator: ">", value: 10 }],
        },
      }),
      CONTEXT,
    ).start;
    assert.deepEqual(listed, {
      type: "DATA_EVENT",
      eventType: "CREATE",
      onFields: [],
      conditions: { stateAfterOperation: [{ attribute: "points", operator: ">", value: 10 }] },
    });
  });

  test("SEGMENT_ENTRY, SUBSCRIPTION and DATE starts with their defaults", () => {
    const start = (s: Record<string, unknown>) =>
      parseScenario(api([EXIT], { start: s }), CONTEXT).start;
    assert.deepEqual(
      start({ type: "SEGMENT_ENTRY", segmentation: "ClientType", segment: "Gold" }),
      {
        type: "SEGMENT_ENTRY",
        segmentation: "ClientType",
        segment: "Gold",
      },
    );
    // A SIMPLE segmentation's one segment is its own name.
    assert.deepEqual(start({ type: "SEGMENT_ENTRY", segmentation: "Active" }), {
      type: "SEGMENT_ENTRY",
      segmentation: "Active",
      segment: "Active",
    });
    assert.deepEqual(start({ type: "SUBSCRIPTION", subscription: "newsletter" }), {
      type: "SUBSCRIPTION",
      subscription: "newsletter",
      subscribe: true,
    });
    assert.deepEqual(
      start({ type: "SUBSCRIPTION", subscription: "newsletter", subscribe: false }),
      {
        type: "SUBSCRIPTION",
        subscription: "newsletter",
        subscribe: false,
      },
    );
    assert.deepEqual(start({ type: "DATE", attribute: "birthDate" }), {
      type: "DATE",
      attribute: "birthDate",
      anniversary: false,
      at: "00:00",
      timezone: "UTC",
    });
    assert.deepEqual(
      start({
        type: "DATE",
        attribute: "lastOrderAt",
        anniversary: true,
        at: "9:05",
        timezone: "Europe/Brussels",
      }),
      {
        type: "DATE",
        attribute: "lastOrderAt",
        anniversary: true,
        at: "09:05",
        timezone: "Europe/Brussels",
      },
    );
  });

  test("WAIT by duration, until a date attribute, or both, with a time zone", () => {
    const blocks = parseScenario(
      api([
        { id: "a", type: "WAIT", duration: "p1d", timezone: "Europe/Brussels", next: "b" },
        { id: "b", type: "WAIT", untilAttribute: "birthDate", next: "c" },
        { id: "c", type: "WAIT", untilAttribute: "lastOrderAt", duration: "PT2H", next: "end" },
        EXIT,
      ]),
      CONTEXT,
    ).blocks;
    assert.deepEqual(blocks.slice(0, 3), [
      { id: "a", type: "WAIT", duration: "P1D", timezone: "Europe/Brussels", next: "b" },
      { id: "b", type: "WAIT", untilAttribute: "birthDate", next: "c" },
      { id: "c", type: "WAIT", duration: "PT2H", untilAttribute: "lastOrderAt", next: "end" },
    ]);
  });

  test("UPDATE_PROFILE: values in their stored form, null clears, subscriptions, segmentations", () => {
    const [block] = parseScenario(
      api([
        {
          id: "u",
          type: "UPDATE_PROFILE",
          attributes: { points: "12", birthDate: "31/12/1990", tier: null, customerId: null },
          subscriptions: { newsletter: false },
          segmentations: { Active: false, ClientType: "Silver" },
          next: "end",
        },
        EXIT,
      ]),
      CONTEXT,
    ).blocks;
    assert.deepEqual(block, {
      id: "u",
      type: "UPDATE_PROFILE",
      attributes: { points: 12, birthDate: "1990-12-31", tier: null, customerId: null },
      subscriptions: { newsletter: false },
      segmentations: { Active: false, ClientType: "Silver" },
      next: "end",
    });
    // Actito's attribute list is read too.
    const [listed] = parseScenario(
      api([
        {
          id: "u",
          type: "UPDATE_PROFILE",
          attributes: [{ name: "tier", value: "Gold" }],
          next: "end",
        },
        EXIT,
      ]),
      CONTEXT,
    ).blocks;
    assert.deepEqual((listed as { attributes: unknown }).attributes, { tier: "Gold" });
  });

  test("CUSTOM_ACTION by id or name, optional parameters left out", () => {
    for (const named of [
      { customAction: "send-to-crm" },
      { customAction: 7 },
      { customActionId: "7" },
      { customAction: "send-to-crm", customActionId: "7" },
    ]) {
      const [block] = parseScenario(
        api([
          { id: "c", type: "CUSTOM_ACTION", ...named, parameters: { campaignId: 5 }, next: "end" },
          EXIT,
        ]),
        CONTEXT,
      ).blocks;
      assert.deepEqual(block, {
        id: "c",
        type: "CUSTOM_ACTION",
        customActionId: "7",
        parameters: { campaignId: 5 },
        next: "end",
      });
    }
  });

  test("loops are allowed when they pass a WAIT that pauses, and FILTER without otherwise leaves", () => {
    const definition = parseScenario(
      api([
        { id: "wait", type: "WAIT", duration: "P1D", next: "bought" },
        {
          id: "bought",
          type: "FILTER",
          conditions: [{ attribute: "points", operator: ">", value: 0 }],
          next: "end",
          otherwise: "wait",
        },
        EXIT,
      ]),
      CONTEXT,
    );
    assert.equal(definition.blocks.length, 3);
    // A minute is enough, in any unit; a FILTER without otherwise is a way out.
    for (const duration of ["PT1M", "PT60S", "PT1H", "P1W", "P1M"])
      parseScenario(
        api([
          { id: "w", type: "WAIT", duration, next: "f" },
          {
            id: "f",
            type: "FILTER",
            conditions: [{ attribute: "tier", operator: "IS_NULL" }],
            next: "w",
          },
        ]),
        CONTEXT,
      );
  });

  test("profileTableOf reads profileTable, then profileTableId", () => {
    assert.equal(profileTableOf({ profileTable: "Customers" }), "Customers");
    assert.equal(profileTableOf({ profileTableId: 12 }), "12");
    assert.equal(profileTableOf({ profileTable: " " }), undefined);
    assert.equal(profileTableOf([]), undefined);
  });

  test("scenarioBody gives back a body that parses to the same definition, by name or by id", () => {
    const definition = parseScenario(WELCOME, CONTEXT);
    const named = scenarioBody(definition, {
      tableName: "Customers",
      customActionName: (id) => (id === "7" ? "send-to-crm" : undefined),
    });
    assert.equal(named.profileTable, "Customers");
    assert.equal(named.profileTableId, "12");
    const crm = (named.blocks as Block[])[2]!;
    assert.deepEqual(Object.keys(crm), [
      "id",
      "type",
      "parameters",
      "customAction",
      "customActionId",
      "next",
    ]);
    assert.equal(crm.customAction, "send-to-crm");
    assert.deepEqual(parseScenario(named, CONTEXT), definition);
    assert.deepEqual(parseScenario(scenarioBody(definition), CONTEXT), definition);
  });
});

describe("blocksChanged", () => {
  test("any change of an id, a link or a value; not the order of keys", () => {
    const definition = parseScenario(WELCOME, CONTEXT);
    const stored = JSON.parse(JSON.stringify(definition)) as typeof definition;
    stored.blocks = stored.blocks.map(
      (b) => Object.fromEntries(Object.entries(b).reverse()) as typeof b,
    );
    assert.equal(blocksChanged(definition, stored), false);
    assert.equal(
      blocksChanged(definition, parseScenario({ ...WELCOME, name: "other" }, CONTEXT)),
      false,
    );
    const [wait, ...rest] = WELCOME.blocks;
    for (const blocks of [
      [{ ...wait, duration: "PT2H" }, ...rest],
      [{ ...wait, id: "pause" }, ...rest],
      [wait, ...rest.map((b) => (b.id === "crm" ? { ...b, parameters: { campaignId: "1" } } : b))],
      [wait, ...rest.map((b) => (b.id === "gold" ? { ...b, otherwise: undefined } : b))],
    ])
      assert.equal(
        blocksChanged(definition, parseScenario({ ...WELCOME, blocks }, CONTEXT)),
        true,
        JSON.stringify(blocks),
      );
  });
});

describe("readScenario: unknown keys", () => {
  test("the definition's own unknown keys are warnings; an answer's keys are ignored quietly", () => {
    const { definition, warnings } = readScenario(
      {
        ...WELCOME,
        description: "a welcome flow",
        reentryPolicy: "NEVER",
        id: "5",
        status: "ACTIVE",
        activatedAt: null,
        deactivatedAt: null,
        createdAt: "2024-01-01T00:00:00.000Z",
        updatedAt: "2024-01-01T00:00:00.000Z",
        _links: {},
      },
      CONTEXT,
    );
    assert.deepEqual(definition, parseScenario(WELCOME, CONTEXT));
    assert.deepEqual(warnings, [
      { path: "description", message: "is not a key of a scenario; ignored" },
      { path: "reentryPolicy", message: "is not a key of a scenario; ignored" },
    ]);
    assert.deepEqual(readScenario(WELCOME, CONTEXT).warnings, []);
  });

  test("an unknown key inside a block is refused, naming it and the block's keys", () => {
    const [wait, gold, crm, tag, end] = WELCOME.blocks;
    refused(
      {
        ...WELCOME,
        blocks: [
          { ...wait, untilAtribute: "birthDate" },
          { ...gold, otherwise: undefined, otherwize: "end" },
          { ...crm, parameter: { campaignId: "1" } },
          { ...tag, attribute: { tier: "Gold" } },
          { ...end, label: "done" },
        ],
      },
      [
        [
          "blocks[0].untilAtribute",
          /not a key of a WAIT block \(its keys: id, type, duration, untilAttribute, timezone, timeZone, next\)/,
        ],
        ["blocks[1].otherwize", /not a key of a FILTER block .*otherwise\)/],
        ["blocks[2].parameter", /not a key of a CUSTOM_ACTION block .*parameters, next\)/],
        ["blocks[3].attribute", /not a key of an UPDATE_PROFILE block .*attributes/],
        ["blocks[4].label", /not a key of an EXIT block \(its keys: id, type\)/],
      ],
    );
    // A key of another type of block is as unknown.
    refused(
      api([{ id: "f", type: "FILTER", conditions: [], duration: "PT1H", next: "end" }, EXIT]),
      [
        ["blocks[0].conditions", /at least one/],
        ["blocks[0].duration", /not a key of a FILTER block/],
      ],
    );
  });

  test("an unknown key inside the start is refused too", () => {
    refused(api([EXIT], { start: { type: "API", eventType: "CREATE" } }), [
      ["start.eventType", /not a key of an API start \(its keys: type\)/],
    ]);
    refused(
      api([EXIT], { start: { type: "DATA_EVENT", eventType: "UPDATE", onField: ["tier"] } }),
      [["start.onField", /not a key of a DATA_EVENT start .*onFields, conditions\)/]],
    );
    refused(api([EXIT], { start: { type: "DATE", attribute: "birthDate", anniversery: true } }), [
      ["start.anniversery", /not a key of a DATE start/],
    ]);
    refused(
      api([EXIT], { start: { type: "SEGMENT_ENTRY", segmentation: "Active", segement: "x" } }),
      [["start.segement", /not a key/]],
    );
    refused(
      api([EXIT], { start: { type: "SUBSCRIPTION", subscription: "newsletter", subscibe: false } }),
      [["start.subscibe", /not a key/]],
    );
  });
});

describe("parseScenario: bad input, every problem with its path", () => {
  test("not an object, no name, no start, no blocks", () => {
    refused("welcome", [["", /JSON object/]]);
    refused({ profileTable: "Customers" }, [
      ["name", /required/],
      ["start", /required/],
      ["blocks", /required/],
    ]);
    refused(api([]), [["blocks", /1 to 200/]]);
    refused(
      api(Array.from({ length: MAX_BLOCKS + 1 }, (_, i) => ({ id: `b${i}`, type: "EXIT" }))),
      [["blocks", /1 to 200/]],
    );
    refused(api([EXIT], { name: "x".repeat(201) }), [["name", /1 to 200/]]);
    // An id-or-name lookup takes the id first: a name of digits would name another scenario.
    for (const name of ["42", " 7 ", "0012"])
      refused(api([EXIT], { name }), [["name", /digits only.*id of another scenario/]]);
    assert.equal(parseScenario(api([EXIT], { name: "42nd" }), CONTEXT).name, "42nd");
  });

  test("a table named twice, differently", () => {
    refused(api([EXIT], { profileTableId: "99" }), [["profileTableId", /another table/]]);
    refused(api([EXIT], { profileTable: " Clients " }), [["profileTable", /names 'Clients'/]]);
    // Spaces around a name or an id are read away, as when the table was looked up.
    for (const named of [{ profileTable: " Customers " }, { profileTableId: " 12 " }])
      assert.equal(parseScenario(api([EXIT], named), CONTEXT).tableId, "12");
  });

  test("reentry and start types", () => {
    refused(api([EXIT], { reentry: "SOMETIMES" }), [["reentry", /NEVER.*AFTER_EXIT.*ALWAYS/]]);
    refused(api([EXIT], { start: { type: "WEBHOOK" } }), [["start.type", /DATA_EVENT/]]);
    refused(api([EXIT], { start: "API" }), [["start", /object/]]);
  });

  test("DATA_EVENT: DELETE, unknown onFields and conditions", () => {
    refused(api([EXIT], { start: { type: "DATA_EVENT", eventType: "DELETE" } }), [
      ["start.eventType", /deleted profile/],
    ]);
    refused(api([EXIT], { start: { type: "DATA_EVENT" } }), [
      ["start.eventType", /CREATE or UPDATE/],
    ]);
    refused(
      api([EXIT], {
        start: {
          type: "DATA_EVENT",
          eventType: "UPDATE",
          onFields: ["tier", "shoeSize"],
          conditions: {
            stateAfterOperation: [
              { attribute: "shoeSize", operator: "=", value: 1 },
              { attribute: "tier", operator: "LIKE", value: "G%" },
              { attribute: "points", operator: ">" },
              { attribute: "tier", operator: "IN", value: "Gold" },
            ],
          },
        },
      }),
      [
        ["start.onFields[1]", /'shoeSize' is not an attribute/],
        ["start.conditions.stateAfterOperation[0].attribute", /'shoeSize' is not an attribute/],
        ["start.conditions.stateAfterOperation[1].operator", /must be one of/],
        ["start.conditions.stateAfterOperation[2].value", /required with operator >/],
        ["start.conditions.stateAfterOperation[3].value", /array with operator IN/],
      ],
    );
    refused(api([EXIT], { start: { type: "DATA_EVENT", eventType: "CREATE", conditions: 3 } }), [
      ["start.conditions", /object/],
    ]);
  });

  test("SEGMENT_ENTRY and SUBSCRIPTION name what the table declares", () => {
    refused(api([EXIT], { start: { type: "SEGMENT_ENTRY", segmentation: "Vip" } }), [
      ["start.segmentation", /Active, ClientType/],
    ]);
    refused(api([EXIT], { start: { type: "SEGMENT_ENTRY", segmentation: "ClientType" } }), [
      ["start.segment", /Gold, Silver/],
    ]);
    refused(
      api([EXIT], {
        start: { type: "SEGMENT_ENTRY", segmentation: "ClientType", segment: "Bronze" },
      }),
      [["start.segment", /Gold, Silver/]],
    );
    refused(api([EXIT], { start: { type: "SUBSCRIPTION", subscription: "offers" } }), [
      ["start.subscription", /newsletter/],
    ]);
    refused(
      api([EXIT], {
        start: { type: "SUBSCRIPTION", subscription: "newsletter", subscribe: "yes" },
      }),
      [["start.subscribe", /true/]],
    );
  });

  test("DATE: an attribute that is not a date, a bad time and zone", () => {
    refused(api([EXIT], { start: { type: "DATE", attribute: "tier" } }), [
      ["start.attribute", /STRING attribute, not a date.*birthDate, lastOrderAt/],
    ]);
    refused(api([EXIT], { start: { type: "DATE", attribute: "holidays" } }), [
      ["start.attribute", /multi-valued DATE/],
    ]);
    refused(api([EXIT], { start: { type: "DATE", attribute: "anniversaryDate" } }), [
      ["start.attribute", /not an attribute/],
    ]);
    refused(api([EXIT], { start: { type: "DATE" } }), [["start.attribute", /must name/]]);
    refused(
      api([EXIT], {
        start: {
          type: "DATE",
          attribute: "birthDate",
          at: "24:00",
          timezone: "Mars/Olympus",
          anniversary: "yearly",
        },
      }),
      [
        ["start.at", /HH:mm/],
        ["start.timezone", /IANA/],
        ["start.anniversary", /true/],
      ],
    );
  });

  test("block ids and types", () => {
    refused(api([{ type: "EXIT" }]), [["blocks[0].id", /required/]]);
    refused(api([{ id: "x".repeat(101), type: "EXIT" }]), [["blocks[0].id", /1 to 100/]]);
    refused(api([{ id: "a", type: "SEND_EMAIL", next: "end" }, EXIT]), [
      ["blocks[0].type", /WAIT, FILTER/],
    ]);
    refused(api([7 as unknown as Block, EXIT]), [["blocks[0]", /object/]]);
    refused(
      api([
        { id: "a", type: "WAIT", duration: "PT1H", next: "end" },
        { id: "a", type: "EXIT" },
        EXIT,
      ]),
      [["blocks[1].id", /also the id of blocks\[0\]/]],
    );
  });

  test("links: next required, EXIT has none, otherwise only on FILTER", () => {
    refused(api([{ id: "a", type: "WAIT", duration: "PT1H" }, EXIT]), [
      ["blocks[0].next", /required/],
    ]);
    refused(api([{ id: "end", type: "EXIT", next: "end" }]), [["blocks[0].next", /no next/]]);
    refused(
      api([{ id: "a", type: "WAIT", duration: "PT1H", next: "end", otherwise: "end" }, EXIT]),
      [["blocks[0].otherwise", /FILTER blocks only/]],
    );
  });

  test("WAIT: a duration that does not parse, nothing to wait for, a date attribute that is not one", () => {
    refused(api([{ id: "w", type: "WAIT", duration: "1 hour", next: "end" }, EXIT]), [
      ["blocks[0].duration", /ISO 8601/],
    ]);
    refused(api([{ id: "w", type: "WAIT", duration: "-PT1H", next: "end" }, EXIT]), [
      ["blocks[0].duration", /ISO 8601/],
    ]);
    refused(api([{ id: "w", type: "WAIT", next: "end" }, EXIT]), [
      ["blocks[0]", /duration.*untilAttribute/],
    ]);
    refused(api([{ id: "w", type: "WAIT", untilAttribute: "points", next: "end" }, EXIT]), [
      ["blocks[0].untilAttribute", /INTEGER attribute, not a date/],
    ]);
    refused(
      api([{ id: "w", type: "WAIT", duration: "PT1H", timezone: "Brussels", next: "end" }, EXIT]),
      [["blocks[0].timezone", /IANA/]],
    );
  });

  test("FILTER: no conditions, CHANGED, unknown attributes, bad values", () => {
    refused(api([{ id: "f", type: "FILTER", next: "end" }, EXIT]), [
      ["blocks[0].conditions", /at least one/],
    ]);
    refused(
      api([
        {
          id: "f",
          type: "FILTER",
          conditions: [
            { attribute: "tier", operator: "CHANGED" },
            { attribute: "shoeSize", operator: "IS_NULL" },
            { attribute: "tier", operator: "=", value: { gold: true } },
            "tier = Gold",
          ],
          next: "end",
        },
        EXIT,
      ]),
      [
        ["blocks[0].conditions[0].operator", /FILTER sees the profile as it is now/],
        ["blocks[0].conditions[1].attribute", /'shoeSize' is not an attribute/],
        ["blocks[0].conditions[2].value", /string, a number/],
        ["blocks[0].conditions[3]", /object/],
      ],
    );
  });

  test("FILTER and DATA_EVENT conditions: each value fits its attribute's type", () => {
    const filter = (...conditions: Record<string, unknown>[]) =>
      api([{ id: "f", type: "FILTER", conditions, next: "end" }, EXIT]);
    refused(
      filter(
        { attribute: "points", operator: ">", value: "abc" },
        { attribute: "points", operator: "IN", value: [1, "two", 3.5] },
        { attribute: "birthDate", operator: "<", value: "2024-02-30" },
        { attribute: "lastOrderAt", operator: ">=", value: "yesterday" },
        { attribute: "profileId", operator: "=", value: "41a" },
        { attribute: "creationMoment", operator: "<", value: "soon" },
        { attribute: "points", operator: "=", value: [1, 2] },
      ),
      [
        ["blocks[0].conditions[0].value", /integer.*: 'points' is of type INTEGER$/],
        ["blocks[0].conditions[1].value[1]", /'points' is of type INTEGER/],
        ["blocks[0].conditions[1].value[2]", /integer/],
        ["blocks[0].conditions[2].value", /date.*'birthDate' is of type DATE/],
        ["blocks[0].conditions[3].value", /timestamp.*'lastOrderAt' is of type TIMESTAMP/],
        ["blocks[0].conditions[4].value", /'profileId' is of type LONG/],
        ["blocks[0].conditions[5].value", /'creationMoment' is of type TIMESTAMP/],
        ["blocks[0].conditions[6].value", /takes one value .*a list goes with IN/],
      ],
    );
    refused(
      api([EXIT], {
        start: {
          type: "DATA_EVENT",
          eventType: "UPDATE",
          conditions: {
            stateBeforeOperation: [{ attribute: "points", operator: "<", value: "ten" }],
            stateAfterOperation: [{ attribute: "birthDate", operator: "IN", value: ["x"] }],
          },
        },
      }),
      [
        ["start.conditions.stateBeforeOperation[0].value", /'points' is of type INTEGER/],
        ["start.conditions.stateAfterOperation[0].value[0]", /'birthDate' is of type DATE/],
      ],
    );
    // Values that fit are kept in the stored form the profile's values are compared in.
    const definition = parseScenario(
      filter(
        { attribute: "points", operator: ">", value: "12" },
        { attribute: "points", operator: "IN", value: ["1", 2, null] },
        { attribute: "birthDate", operator: "=", value: "29/02/2024" },
        { attribute: "lastOrderAt", operator: "<", value: "2024-05-01T10:00:00+02:00" },
        { attribute: "tier", operator: "=", value: 5 },
        { attribute: "tier", operator: "=", value: null },
        { attribute: "tags", operator: "=", value: ["a", "b"] },
        { attribute: "tier", operator: "IS_NULL" },
      ),
      CONTEXT,
    );
    const block = definition.blocks[0]!;
    assert.equal(block.type, "FILTER");
    if (block.type === "FILTER")
      assert.deepEqual(
        block.conditions.map((c) => c.value),
        [
          12,
          [1, 2, null],
          "2024-02-29",
          "2024-05-01T08:00:00.000Z",
          "5",
          null,
          ["a", "b"],
          undefined,
        ],
      );
  });

  test("CUSTOM_ACTION: unknown action, missing mandatory parameter, unknown or mistyped parameter", () => {
    refused(
      api([{ id: "c", type: "CUSTOM_ACTION", customAction: "send-to-erp", next: "end" }, EXIT]),
      [["blocks[0].customAction", /no custom action .* 'send-to-erp'/]],
    );
    refused(api([{ id: "c", type: "CUSTOM_ACTION", next: "end" }, EXIT]), [
      ["blocks[0].customAction", /required/],
    ]);
    refused(
      api([{ id: "c", type: "CUSTOM_ACTION", customAction: "send-to-crm", next: "end" }, EXIT]),
      [["blocks[0].parameters.campaignId", /mandatory.*send-to-crm/]],
    );
    refused(
      api([
        {
          id: "c",
          type: "CUSTOM_ACTION",
          customAction: "send-to-crm",
          parameters: { campaignId: "1", priority: "high", channel: "sms" },
          next: "end",
        },
        EXIT,
      ]),
      [
        ["blocks[0].parameters.priority", /INTEGER/],
        ["blocks[0].parameters.channel", /not a parameter/],
      ],
    );
    refused(
      api([
        {
          id: "c",
          type: "CUSTOM_ACTION",
          customAction: "send-to-crm",
          customActionId: "8",
          parameters: { campaignId: "1" },
          next: "end",
        },
        EXIT,
      ]),
      [["blocks[0].customActionId", /no custom action/]],
    );
    refused(
      api([
        {
          id: "c",
          type: "CUSTOM_ACTION",
          customAction: "send-to-crm",
          parameters: [1],
          next: "end",
        },
        EXIT,
      ]),
      [["blocks[0].parameters", /object/]],
    );
  });

  test("CUSTOM_ACTION: an action's parameter named like an Object.prototype property must be given", () => {
    // An action stored before parseCustomAction refused such names.
    const legacy: CustomAction = {
      ...SEND_TO_CRM,
      id: "9",
      name: "legacy",
      parameters: [
        { name: "constructor", valueType: "STRING", mandatory: true },
        { name: "toString", valueType: "STRING", mandatory: false },
      ],
    };
    const context: ScenarioContext = {
      table: CUSTOMERS,
      customActions: (key) => (key === "legacy" || key === "9" ? legacy : undefined),
    };
    const block = (parameters: Record<string, unknown>) =>
      api([
        { id: "c", type: "CUSTOM_ACTION", customAction: "legacy", parameters, next: "end" },
        EXIT,
      ]);
    assert.throws(
      () => parseScenario(block({}), context),
      (error: HeraldError) =>
        error.code === "HERALD_INVALID_SCENARIO" &&
        error.details.length === 1 &&
        error.details[0]!.path === "blocks[0].parameters.constructor" &&
        /mandatory/.test(error.details[0]!.message),
    );
    const given = JSON.parse('{"constructor": "c", "__proto__": "p"}') as Record<string, unknown>;
    assert.throws(
      () => parseScenario(block(given), context),
      (error: HeraldError) =>
        error.details.map((d) => d.path).join() === "blocks[0].parameters.__proto__",
    );
    const stored = parseScenario(block({ constructor: "c", toString: "t" }), context).blocks[0]!;
    assert.equal(stored.type, "CUSTOM_ACTION");
    if (stored.type === "CUSTOM_ACTION")
      assert.deepEqual(JSON.parse(JSON.stringify(stored.parameters)), {
        constructor: "c",
        toString: "t",
      });
  });

  test("UPDATE_PROFILE: unknown, technical, multi-valued, mandatory, unique and mistyped attributes", () => {
    refused(
      api([
        {
          id: "u",
          type: "UPDATE_PROFILE",
          attributes: {
            shoeSize: 42,
            profileId: 1,
            tags: "a",
            emailAddress: null,
            customerId: "C-1",
            points: "many",
          },
          next: "end",
        },
        EXIT,
      ]),
      [
        ["blocks[0].attributes.shoeSize", /not an attribute/],
        ["blocks[0].attributes.profileId", /maintained by Herald/],
        ["blocks[0].attributes.tags", /multi-valued/],
        ["blocks[0].attributes.emailAddress", /mandatory/],
        ["blocks[0].attributes.customerId", /unique/],
        ["blocks[0].attributes.points", /INTEGER/],
      ],
    );
  });

  test("UPDATE_PROFILE: subscriptions, segmentations, and writing nothing", () => {
    refused(
      api([
        {
          id: "u",
          type: "UPDATE_PROFILE",
          subscriptions: { offers: true, newsletter: "yes" },
          segmentations: { Vip: true, ClientType: "Bronze", Active: "Gold" },
          next: "end",
        },
        EXIT,
      ]),
      [
        ["blocks[0].subscriptions.offers", /not a subscription/],
        ["blocks[0].subscriptions.newsletter", /true .* or false/],
        ["blocks[0].segmentations.Vip", /not a segmentation/],
        ["blocks[0].segmentations.ClientType", /Gold, Silver/],
        ["blocks[0].segmentations.Active", /true .* or false/],
      ],
    );
    // An EXCLUSIVE segmentation has no segment of its own name: true says nothing.
    refused(
      api([
        { id: "u", type: "UPDATE_PROFILE", segmentations: { ClientType: true }, next: "end" },
        EXIT,
      ]),
      [["blocks[0].segmentations.ClientType", /Gold, Silver/]],
    );
    refused(api([{ id: "u", type: "UPDATE_PROFILE", attributes: {}, next: "end" }, EXIT]), [
      ["blocks[0]", /writes something/],
    ]);
  });

  test("every problem at once, in one answer", () => {
    const problems = problemsOf({
      name: "",
      profileTable: "Customers",
      reentry: "twice",
      start: { type: "DATE", attribute: "tier" },
      blocks: [
        { id: "w", type: "WAIT", duration: "soon", next: "c" },
        { id: "c", type: "CUSTOM_ACTION", customAction: "nope", next: "end" },
        EXIT,
      ],
    });
    assert.deepEqual(
      problems.map((p) => p.path),
      ["name", "reentry", "start.attribute", "blocks[0].duration", "blocks[1].customAction"],
    );
  });
});

describe("parseScenario: bad graphs", () => {
  const wait = (id: string, next: string, duration = "PT1H"): Block => ({
    id,
    type: "WAIT",
    duration,
    next,
  });
  const filter = (id: string, next: string, otherwise?: string): Block => ({
    id,
    type: "FILTER",
    conditions: [{ attribute: "tier", operator: "=", value: "Gold" }],
    next,
    ...(otherwise === undefined ? {} : { otherwise }),
  });
  const update = (id: string, next: string): Block => ({
    id,
    type: "UPDATE_PROFILE",
    attributes: { tier: "Gold" },
    next,
  });

  test("a next or otherwise that names no block", () => {
    refused(api([wait("a", "b"), EXIT]), [
      ["blocks[0].next", /names block 'b', which is not in the scenario \(its blocks: a, end\)/],
    ]);
    refused(api([filter("f", "end", "elsewhere"), EXIT]), [["blocks[0].otherwise", /'elsewhere'/]]);
  });

  test("a block no path reaches from the first", () => {
    refused(api([wait("a", "end"), wait("orphan", "end"), EXIT]), [
      ["blocks[1]", /'orphan' cannot be reached.*first block 'a'/],
    ]);
    // The first block is where runs begin, even when another one links to it.
    refused(api([EXIT, wait("a", "end")]), [
      ["blocks[1]", /'a' cannot be reached.*first block 'end'/],
    ]);
    // An island that links to itself: unreachable, which says it all.
    refused(api([wait("a", "end"), wait("b", "c"), wait("c", "b"), EXIT]), [
      ["blocks[1]", /'b' cannot be reached/],
      ["blocks[2]", /'c' cannot be reached/],
    ]);
  });

  test("no EXIT at all", () => {
    refused(api([wait("a", "b"), wait("b", "a")]), [["blocks", /no EXIT block/]]);
  });

  test("a loop with no way out, even through a pausing WAIT", () => {
    refused(api([filter("f", "end", "w"), wait("w", "u"), update("u", "w"), EXIT]), [
      ["blocks[1]", /no path from 'w' leads to an EXIT/],
      ["blocks[2]", /no path from 'u' leads to an EXIT/],
    ]);
  });

  test("loops that pass no WAIT that pauses", () => {
    refused(api([update("u", "f"), filter("f", "end", "u"), EXIT]), [
      ["blocks[1].otherwise", /closes the loop u → f → u/],
    ]);
    // A block that leads to itself.
    refused(api([filter("f", "end", "f"), EXIT]), [
      ["blocks[0].otherwise", /closes the loop f → f/],
    ]);
    // A WAIT of zero does not pause.
    refused(api([wait("w", "f", "PT0S"), filter("f", "end", "w"), EXIT]), [
      ["blocks[1].otherwise", /closes the loop w → f → w/],
    ]);
    refused(api([wait("w", "f", "P0D"), filter("f", "end", "w"), EXIT]), [
      ["blocks[1].otherwise", /closes the loop/],
    ]);
    // Two loops, each named once; the one through the pausing WAIT is fine.
    refused(
      api([filter("a", "b", "p"), update("b", "a"), wait("p", "c"), filter("c", "end", "p"), EXIT]),
      [["blocks[1].next", /closes the loop a → b → a/]],
    );
  });

  test("a loop needs a WAIT of at least PT1M, without untilAttribute", () => {
    const loop = (waitBlock: Block) => api([waitBlock, filter("f", "end", "w"), EXIT]);
    // A tiny duration would let a run go round many times a second.
    for (const duration of ["PT0.001S", "PT1S", "PT59S", "PT0M59.9S"])
      refused(loop(wait("w", "f", duration)), [
        ["blocks[1].otherwise", /closes the loop w → f → w, which passes no WAIT of at least PT1M/],
      ]);
    // A date already past lets the run on at once: untilAttribute never counts, with a duration or not.
    refused(loop({ id: "w", type: "WAIT", untilAttribute: "birthDate", next: "f" }), [
      ["blocks[1].otherwise", /no untilAttribute \(a date already past lets a run on at once\)/],
    ]);
    refused(
      loop({ id: "w", type: "WAIT", untilAttribute: "lastOrderAt", duration: "P1D", next: "f" }),
      [["blocks[1].otherwise", /closes the loop w → f → w/]],
    );
    // The same WAITs outside a loop are fine.
    for (const block of [
      wait("w", "end", "PT0.001S"),
      { id: "w", type: "WAIT", untilAttribute: "birthDate", next: "end" },
    ])
      assert.equal(parseScenario(api([block, EXIT]), CONTEXT).blocks.length, 2);
  });

  test("a loop through a zero WAIT beside a pausing one: only the bad loop is named", () => {
    refused(
      api([
        wait("w0", "f", "PT0S"),
        filter("f", "g", "w0"),
        wait("w1", "g2"),
        filter("g", "end", "w1"),
        filter("g2", "end", "f"),
        EXIT,
      ]),
      [["blocks[1].otherwise", /closes the loop w0 → f → w0/]],
    );
  });

  test("graph checks wait until every block's id, type and links can be read", () => {
    // Block 1 has no id: the missing link to it is not reported as well.
    refused(api([wait("a", "b"), { type: "EXIT" }]), [["blocks[1].id", /required/]]);
  });
});
