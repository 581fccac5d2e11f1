import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { checkValue } from "../../src/domain/attribute-values.js";
import { VALUE_TYPES } from "../../src/domain/data-table.js";
import { HeraldError } from "../../src/domain/errors.js";
import { parseTableDefinition, readTableDefinition } from "../../src/domain/table-definition.js";

function rejects(
  kind: "PROFILE_TABLE" | "CUSTOM_TABLE",
  input: unknown,
  status: number,
  path: RegExp,
): void {
  try {
    parseTableDefinition(kind, input);
  } catch (error) {
    assert.ok(error instanceof HeraldError);
    assert.equal(error.status, status, JSON.stringify(error.toBody()));
    assert.ok(
      error.details.some((d) => path.test(d.path)),
      JSON.stringify(error.details),
    );
    return;
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
}

const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING" },
    {
      name: "status",
      valueType: "STRING",
      valueRestriction: { acceptedValues: ["NEW", "SHIPPED"] },
    },
  ],
  eventsToTrigger: [
    {
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
    },
  ],
};

const attributeName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,20}$/);

describe("table definitions", () => {
  test("the SPEC custom table is accepted; its primary key becomes unique and mandatory", () => {
    const table = parseTableDefinition("CUSTOM_TABLE", ORDERS);
    assert.equal(table.customTableType, "INTERACTIONS");
    assert.deepEqual(
      table.attributes.map((a) => [a.name, a.unique, a.mandatory]),
      [
        ["orderId", true, true],
        ["status", false, false],
      ],
    );
    assert.equal(table.eventsToTrigger[0]!.triggerRules[0]!.onOperation, "UPDATE");
  });

  test("the SPEC profile table is accepted; typed attributes imply their value type", () => {
    const table = parseTableDefinition("PROFILE_TABLE", {
      name: "Customers",
      attributes: [
        { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
        { name: "birth", type: "BIRTHDATE" },
        {
          name: "customerId",
          type: "CUSTOM",
          valueType: "STRING",
          unique: true,
          valueRestriction: { maxLength: 64 },
        },
      ],
      subscriptions: [{ name: "newsletter" }],
      segmentations: [
        { name: "Active", type: "SIMPLE" },
        { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver", "Bronze"] },
      ],
    });
    assert.deepEqual(
      table.attributes.map((a) => a.valueType),
      ["STRING", "DATE", "STRING"],
    );
    assert.equal(table.segmentations[1]!.segments!.length, 3);
  });

  test("any well-formed attribute list with distinct names is accepted, keeping names and types", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            name: attributeName,
            valueType: fc.constantFrom(...VALUE_TYPES),
            unique: fc.boolean(),
          }),
          {
            minLength: 1,
            maxLength: 8,
            selector: (a) => a.name,
          },
        ),
        (attributes) => {
          const table = parseTableDefinition("CUSTOM_TABLE", {
            name: "T",
            type: "REPOSITORY",
            primaryKeyAttribute: attributes[0]!.name,
            attributes,
          });
          assert.deepEqual(
            table.attributes.map((a) => [a.name, a.valueType]),
            attributes.map((a) => [a.name, a.valueType]),
          );
        },
      ),
    );
  });

  test("names starting with '_' or holding odd characters are refused", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string().map((s) => `_${s}`),
          fc.constantFrom("a b", "a.b", "", "1abc", "é"),
        ),
        (name) => {
          rejects(
            "PROFILE_TABLE",
            { name: "T", attributes: [{ name, type: "CUSTOM", valueType: "STRING" }] },
            400,
            /attributes\[0\]\.name/,
          );
        },
      ),
    );
  });

  test("malformed definitions are 400 naming the field", () => {
    rejects("PROFILE_TABLE", null, 400, /body/);
    rejects("PROFILE_TABLE", { attributes: [] }, 400, /^name$/);
    rejects(
      "PROFILE_TABLE",
      { name: "T", attributes: [{ name: "x", type: "CUSTOM" }] },
      400,
      /valueType/,
    );
    rejects("PROFILE_TABLE", { name: "T", attributes: [{ name: "x", type: "NOPE" }] }, 400, /type/);
    rejects(
      "PROFILE_TABLE",
      { name: "T", attributes: [{ name: "x", type: "EMAIL_ADDRESS", valueType: "INTEGER" }] },
      400,
      /valueType/,
    );
    rejects(
      "PROFILE_TABLE",
      { name: "T", attributes: [{ name: "updateMoment", valueType: "TIMESTAMP" }] },
      400,
      /name/,
    );
    rejects("PROFILE_TABLE", { name: "42", attributes: [] }, 400, /^name$/);
    rejects(
      "PROFILE_TABLE",
      { name: "T", attributes: [], segmentations: [{ name: "S", type: "EXCLUSIVE" }] },
      400,
      /segments/,
    );
    rejects("CUSTOM_TABLE", { ...ORDERS, type: "LEDGER" }, 400, /^type$/);
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, eventsToTrigger: [{ name: "e", triggerRules: [] }] },
      400,
      /triggerRules/,
    );
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, eventsToTrigger: [{ name: "e", triggerRules: [{ onOperation: "UPSERT" }] }] },
      400,
      /onOperation/,
    );
    rejects(
      "CUSTOM_TABLE",
      {
        ...ORDERS,
        eventsToTrigger: [
          {
            name: "e",
            triggerRules: [
              {
                onOperation: "CREATE",
                matchingConditions: {
                  stateAfterOperation: [{ attribute: "status", operator: "LIKE", value: "x" }],
                },
              },
            ],
          },
        ],
      },
      400,
      /operator/,
    );
    rejects(
      "CUSTOM_TABLE",
      {
        ...ORDERS,
        attributes: [{ name: "orderId", valueType: "STRING", valueRestriction: { maxLength: -1 } }],
      },
      400,
      /maxLength/,
    );
  });

  test("inconsistent definitions are 422 naming the field", () => {
    rejects("CUSTOM_TABLE", { ...ORDERS, primaryKeyAttribute: "id" }, 422, /primaryKeyAttribute/);
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, creationTimeAttribute: "status" },
      422,
      /creationTimeAttribute/,
    );
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, attributes: [...ORDERS.attributes, { name: "status", valueType: "STRING" }] },
      422,
      /attributes\[2\]\.name/,
    );
    rejects(
      "CUSTOM_TABLE",
      {
        ...ORDERS,
        eventsToTrigger: [
          { name: "e", triggerRules: [{ onOperation: "UPDATE", onAnyAttribute: ["ghost"] }] },
        ],
      },
      422,
      /onAnyAttribute\[0\]/,
    );
    rejects(
      "CUSTOM_TABLE",
      {
        ...ORDERS,
        eventsToTrigger: [
          {
            name: "e",
            triggerRules: [
              {
                onOperation: "UPDATE",
                matchingConditions: {
                  stateBeforeOperation: [{ attribute: "ghost", operator: "IS_NULL" }],
                },
              },
            ],
          },
        ],
      },
      422,
      /stateBeforeOperation\[0\]\.attribute/,
    );
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, eventsToTrigger: [ORDERS.eventsToTrigger[0], ORDERS.eventsToTrigger[0]] },
      422,
      /eventsToTrigger\[1\]\.name/,
    );
    rejects(
      "PROFILE_TABLE",
      { name: "T", attributes: [], subscriptions: [{ name: "n" }, { name: "n" }] },
      422,
      /subscriptions\[1\]/,
    );
  });

  test("foreign keys: defaults filled in, malformed entries 400, impossible ones 422", () => {
    const ref = { kind: "PROFILE_TABLE", id: "Customers" };
    const withKeys = (foreignKeys: unknown) => ({
      ...ORDERS,
      attributes: [...ORDERS.attributes, { name: "customerId", valueType: "LONG" }],
      foreignKeys,
    });
    const table = parseTableDefinition(
      "CUSTOM_TABLE",
      withKeys([{ attribute: "customerId", referencedTable: ref }]),
    );
    assert.deepEqual(table.foreignKeys, [
      {
        attribute: "customerId",
        referencedTable: ref,
        referencedAttribute: "",
        onDelete: "RESTRICT",
      },
    ]);
    rejects("CUSTOM_TABLE", withKeys([{ attribute: "customerId" }]), 400, /referencedTable$/);
    rejects(
      "CUSTOM_TABLE",
      withKeys([{ attribute: "customerId", referencedTable: { kind: "TABLE", id: "x" } }]),
      400,
      /referencedTable\.kind/,
    );
    rejects(
      "CUSTOM_TABLE",
      withKeys([{ attribute: "customerId", referencedTable: ref, onDelete: "cascade" }]),
      400,
      /onDelete/,
    );
    rejects(
      "CUSTOM_TABLE",
      withKeys([{ attribute: "ghost", referencedTable: ref }]),
      422,
      /attribute/,
    );
    rejects(
      "CUSTOM_TABLE",
      withKeys([{ attribute: "orderId", referencedTable: ref, onDelete: "SET_NULL" }]),
      422,
      /foreignKeys\[0\]\.onDelete/,
    );
    rejects(
      "CUSTOM_TABLE",
      withKeys([
        { attribute: "customerId", referencedTable: ref },
        { attribute: "customerId", referencedTable: ref, onDelete: "CASCADE" },
      ]),
      422,
      /foreignKeys\[1\]\.attribute/,
    );
  });

  test("accepted values declared on a table are exactly the values its attribute accepts", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[A-Z]{1,5}$/), { minLength: 1, maxLength: 5 }),
        fc.stringMatching(/^[A-Z]{1,5}$/),
        (accepted, probe) => {
          const table = parseTableDefinition("CUSTOM_TABLE", {
            name: "T",
            type: "REPOSITORY",
            primaryKeyAttribute: "k",
            attributes: [
              { name: "k", valueType: "STRING", valueRestriction: { acceptedValues: accepted } },
            ],
          });
          const result = checkValue(table.attributes[0]!, probe);
          assert.equal(result.kind === "valid", accepted.includes(probe));
        },
      ),
    );
  });

  test("without primaryKeyAttribute a custom table keys on 'id': added, or the declared one", () => {
    const { primaryKeyAttribute: _pk, ...keyless } = ORDERS;
    const added = parseTableDefinition("CUSTOM_TABLE", keyless);
    assert.equal(added.primaryKeyAttribute, "id");
    assert.deepEqual(added.attributes[0], {
      name: "id",
      valueType: "STRING",
      unique: true,
      mandatory: true,
      multiValued: false,
      indexed: true,
    });
    assert.equal(added.attributes.length, ORDERS.attributes.length + 1);
    const declared = parseTableDefinition("CUSTOM_TABLE", {
      ...keyless,
      attributes: [...ORDERS.attributes, { name: "id", valueType: "LONG" }],
    });
    assert.equal(declared.primaryKeyAttribute, "id");
    assert.deepEqual(
      declared.attributes.map((a) => [a.name, a.valueType, a.unique, a.mandatory]),
      [
        ["orderId", "STRING", false, false],
        ["status", "STRING", false, false],
        ["id", "LONG", true, true],
      ],
    );
    // An explicit primary key that is no attribute stays an error.
    rejects("CUSTOM_TABLE", { ...ORDERS, primaryKeyAttribute: "id" }, 422, /primaryKeyAttribute/);
  });

  test("Actito's definition keys are kept; unknown keys are warnings, not errors", () => {
    const { definition, warnings } = readTableDefinition("CUSTOM_TABLE", {
      ...ORDERS,
      entityName: "acme",
      compositeKey: null,
      bigTable: false,
      valueAttribute: "status",
      displayOptions: { icon: "cart" },
      capabilityDTOs: [{ name: "Interaction" }],
      attributes: [
        { name: "orderId", valueType: "STRING", cacheIndexed: true },
        {
          name: "status",
          valueType: "STRING",
          displayOptions: { label: "Status" },
          valueRestriction: { acceptedValues: ["NEW"], pattern: ".*" },
        },
        { name: "customerId", valueType: "STRING" },
      ],
      foreignKeys: [
        {
          name: "link-to-customer",
          attribute: "customerId",
          reference: { tableType: "PROFILE_TABLE", tableId: 97, attribute: "customerId", x: 1 },
          onDelete: "CASCADE",
          valueAttribute: "customerId",
          comment: "kept out",
        },
      ],
    });
    assert.equal(definition.entityName, "acme");
    assert.equal(definition.compositeKey, undefined);
    assert.equal(definition.bigTable, false);
    assert.equal(definition.valueAttribute, "status");
    assert.deepEqual(definition.displayOptions, { icon: "cart" });
    assert.deepEqual(definition.attributes[1]!.displayOptions, { label: "Status" });
    assert.deepEqual(definition.foreignKeys, [
      {
        name: "link-to-customer",
        attribute: "customerId",
        referencedTable: { kind: "PROFILE_TABLE", id: "97" },
        referencedAttribute: "customerId",
        onDelete: "CASCADE",
        valueAttribute: "customerId",
      },
    ]);
    assert.deepEqual(
      warnings.map((w) => w.path),
      [
        "capabilityDTOs",
        "attributes[0].cacheIndexed",
        "attributes[1].valueRestriction.pattern",
        "foreignKeys[0].comment",
        "foreignKeys[0].reference.x",
      ],
    );
    assert.ok(warnings.every((w) => /ignored/.test(w.message)));
    const compositeKey = parseTableDefinition("CUSTOM_TABLE", {
      ...ORDERS,
      compositeKey: ["orderId", "status"],
    });
    assert.deepEqual(compositeKey.compositeKey, ["orderId", "status"]);
    assert.deepEqual(readTableDefinition("CUSTOM_TABLE", ORDERS).warnings, []);
  });

  test("Actito's keys of the wrong type are 400; naming what does not exist is 422", () => {
    rejects("CUSTOM_TABLE", { ...ORDERS, bigTable: "yes" }, 400, /^bigTable$/);
    rejects("CUSTOM_TABLE", { ...ORDERS, entityName: 7 }, 400, /^entityName$/);
    rejects("CUSTOM_TABLE", { ...ORDERS, displayOptions: "wide" }, 400, /^displayOptions$/);
    rejects(
      "PROFILE_TABLE",
      { name: "T", attributes: [], displayOptions: [] },
      400,
      /displayOptions/,
    );
    rejects("CUSTOM_TABLE", { ...ORDERS, compositeKey: "orderId" }, 400, /^compositeKey$/);
    rejects("CUSTOM_TABLE", { ...ORDERS, compositeKey: ["ghost"] }, 422, /compositeKey\[0\]/);
    rejects("CUSTOM_TABLE", { ...ORDERS, valueAttribute: 3 }, 400, /^valueAttribute$/);
    rejects("CUSTOM_TABLE", { ...ORDERS, valueAttribute: "ghost" }, 422, /^valueAttribute$/);
    rejects(
      "CUSTOM_TABLE",
      {
        ...ORDERS,
        attributes: [{ name: "orderId", valueType: "STRING", displayOptions: true }],
      },
      400,
      /attributes\[0\]\.displayOptions/,
    );
    const fk = { attribute: "orderId", reference: { tableType: "PROFILE_TABLE", tableId: "P" } };
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, foreignKeys: [{ ...fk, reference: { ...fk.reference, tableType: "TABLE" } }] },
      400,
      /foreignKeys\[0\]\.reference\.tableType/,
    );
    rejects(
      "CUSTOM_TABLE",
      { ...ORDERS, foreignKeys: [{ ...fk, referencedTable: { kind: "PROFILE_TABLE", id: "Q" } }] },
      400,
      /foreignKeys\[0\]\.reference$/,
    );
    rejects("CUSTOM_TABLE", { ...ORDERS, foreignKeys: [{ ...fk, name: 5 }] }, 400, /\.name$/);
    // Both forms are taken when they agree, as a GET answers them.
    const both = parseTableDefinition("CUSTOM_TABLE", {
      ...ORDERS,
      foreignKeys: [{ ...fk, referencedTable: { kind: "PROFILE_TABLE", id: "P" } }],
    });
    assert.deepEqual(both.foreignKeys![0]!.referencedTable, { kind: "PROFILE_TABLE", id: "P" });
  });
});
