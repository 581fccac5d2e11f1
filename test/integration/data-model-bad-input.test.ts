import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const PEOPLE = {
  name: "People",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "age", type: "CUSTOM", valueType: "INTEGER" },
    {
      name: "tier",
      type: "CUSTOM",
      valueType: "STRING",
      valueRestriction: { acceptedValues: ["A", "B"] },
    },
    { name: "code", type: "CUSTOM", valueType: "STRING", valueRestriction: { maxLength: 3 } },
  ],
  subscriptions: [{ name: "news" }],
  segmentations: [],
};

/** Each case: method, url, body, expected status, code, a path the details must name. */
const PROFILE_URL = "/v4/entity/acme/table/People/profile";
const CASES: [string, string, string, unknown, number, string, RegExp][] = [
  [
    "wrong integer",
    "POST",
    PROFILE_URL,
    {
      attributes: [
        { name: "emailAddress", value: "a@b.cd" },
        { name: "age", value: "old" },
      ],
    },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[1\]\.value/,
  ],
  [
    "bad e-mail",
    "POST",
    PROFILE_URL,
    { attributes: [{ name: "emailAddress", value: "not-an-email" }] },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[0\]\.value/,
  ],
  [
    "value not accepted",
    "POST",
    PROFILE_URL,
    {
      attributes: [
        { name: "emailAddress", value: "a@b.cd" },
        { name: "tier", value: "Z" },
      ],
    },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[1\]/,
  ],
  [
    "too long",
    "POST",
    PROFILE_URL,
    {
      attributes: [
        { name: "emailAddress", value: "a@b.cd" },
        { name: "code", value: "ABCD" },
      ],
    },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[1\]/,
  ],
  [
    "object value",
    "POST",
    PROFILE_URL,
    { attributes: [{ name: "emailAddress", value: { x: 1 } }] },
    400,
    "HERALD_VALIDATION",
    /attributes/,
  ],
  [
    "unknown attribute",
    "POST",
    PROFILE_URL,
    {
      attributes: [
        { name: "emailAddress", value: "a@b.cd" },
        { name: "shoeSize", value: 4 },
      ],
    },
    400,
    "HERALD_UNKNOWN_ATTRIBUTE",
    /attributes\[1\]\.name/,
  ],
  [
    "technical attribute",
    "POST",
    PROFILE_URL,
    { attributes: [{ name: "profileId", value: 4 }] },
    400,
    "HERALD_TECHNICAL_ATTRIBUTE",
    /attributes\[0\]\.name/,
  ],
  [
    "missing mandatory",
    "POST",
    PROFILE_URL,
    { attributes: [{ name: "age", value: 3 }] },
    400,
    "HERALD_MISSING_MANDATORY",
    /attributes/,
  ],
  [
    "missing mandatory on upsert",
    "POST",
    `${PROFILE_URL}?allowUpdate=true`,
    { attributes: [{ name: "age", value: 3 }] },
    400,
    "HERALD_MISSING_MANDATORY",
    /attributes/,
  ],
  [
    "unknown subscription",
    "POST",
    PROFILE_URL,
    {
      attributes: [{ name: "emailAddress", value: "a@b.cd" }],
      subscriptions: [{ name: "x", subscribe: true }],
    },
    400,
    "HERALD_VALIDATION",
    /subscriptions\[0\]/,
  ],
  [
    "unknown table",
    "POST",
    "/v4/entity/acme/table/Nope/profile",
    { attributes: [] },
    404,
    "HERALD_TABLE_NOT_FOUND",
    /.*/,
  ],
  [
    "unknown entity",
    "POST",
    "/v4/entity/nope/table/People/profile",
    { attributes: [] },
    404,
    "HERALD_ENTITY_NOT_FOUND",
    /.*/,
  ],
  [
    "bad profile key",
    "GET",
    `${PROFILE_URL}/age=3`,
    undefined,
    400,
    "HERALD_INVALID_PROFILE_KEY",
    /profileKey/,
  ],
  [
    "unknown profile",
    "PUT",
    `${PROFILE_URL}/999999`,
    { attributes: [{ name: "age", value: 1 }] },
    404,
    "HERALD_PROFILE_NOT_FOUND",
    /.*/,
  ],
  [
    "bad search",
    "GET",
    `${PROFILE_URL}?search=nothing`,
    undefined,
    400,
    "HERALD_INVALID_QUERY",
    /search/,
  ],
  [
    "bad table definition",
    "POST",
    "/v5/entities/acme/profile-tables",
    { name: "T", attributes: [{ name: "_x", type: "CUSTOM", valueType: "STRING" }] },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /attributes\[0\]\.name/,
  ],
  [
    "unknown value type",
    "POST",
    "/v5/entities/acme/profile-tables",
    { name: "T", attributes: [{ name: "x", type: "CUSTOM", valueType: "UUID" }] },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /attributes\[0\]\.valueType/,
  ],
  [
    "technical attribute in definition",
    "POST",
    "/v5/entities/acme/profile-tables",
    { name: "T", attributes: [{ name: "profileId", type: "CUSTOM", valueType: "LONG" }] },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /attributes\[0\]\.name/,
  ],
  [
    "duplicate profile table",
    "POST",
    "/v5/entities/acme/profile-tables",
    PEOPLE,
    409,
    "HERALD_NAME_TAKEN",
    /name/,
  ],
  [
    "unknown primary key",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C",
      type: "REPOSITORY",
      primaryKeyAttribute: "id",
      attributes: [{ name: "key", valueType: "STRING" }],
    },
    422,
    "HERALD_TABLE_DEFINITION_INCONSISTENT",
    /primaryKeyAttribute/,
  ],
  [
    "event on unknown attribute",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C",
      type: "REPOSITORY",
      primaryKeyAttribute: "key",
      attributes: [{ name: "key", valueType: "STRING" }],
      eventsToTrigger: [
        { name: "e", triggerRules: [{ onOperation: "UPDATE", onAnyAttribute: ["ghost"] }] },
      ],
    },
    422,
    "HERALD_TABLE_DEFINITION_INCONSISTENT",
    /onAnyAttribute\[0\]/,
  ],
  [
    "bad onOperation",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C",
      type: "REPOSITORY",
      primaryKeyAttribute: "key",
      attributes: [{ name: "key", valueType: "STRING" }],
      eventsToTrigger: [{ name: "e", triggerRules: [{ onOperation: "UPSERT" }] }],
    },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /onOperation/,
  ],
  [
    "bad operator",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C",
      type: "REPOSITORY",
      primaryKeyAttribute: "key",
      attributes: [{ name: "key", valueType: "STRING" }],
      eventsToTrigger: [
        {
          name: "e",
          triggerRules: [
            {
              onOperation: "CREATE",
              matchingConditions: {
                stateAfterOperation: [{ attribute: "key", operator: "~", value: "x" }],
              },
            },
          ],
        },
      ],
    },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /operator/,
  ],
  [
    "NUL in a value",
    "POST",
    PROFILE_URL,
    {
      attributes: [
        { name: "emailAddress", value: "a@b.cd" },
        { name: "code", value: "a\u0000" },
      ],
    },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[1\]\.value/,
  ],
  [
    "lone surrogate in a value",
    "POST",
    PROFILE_URL,
    {
      attributes: [
        { name: "emailAddress", value: "a@b.cd" },
        { name: "code", value: "\ud800" },
      ],
    },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[1\]\.value/,
  ],
  [
    "NUL in a path",
    "GET",
    `${PROFILE_URL}/emailAddress=a%00b`,
    undefined,
    400,
    "HERALD_VALIDATION",
    /params\.profileKey/,
  ],
  [
    "NUL in a table name",
    "GET",
    "/v5/entities/acme/profile-tables/a%00",
    undefined,
    400,
    "HERALD_VALIDATION",
    /params\.table/,
  ],
  [
    "NUL in a definition",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C\u0000",
      type: "REPOSITORY",
      primaryKeyAttribute: "k",
      attributes: [{ name: "k", valueType: "STRING" }],
    },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /name/,
  ],
  [
    "unique value too long",
    "POST",
    PROFILE_URL,
    { attributes: [{ name: "emailAddress", value: `${"a".repeat(3000)}@b.cd` }] },
    400,
    "HERALD_INVALID_VALUE",
    /attributes\[0\]\.value/,
  ],
  [
    "definition key of the wrong type",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C",
      type: "REPOSITORY",
      bigTable: "yes",
      attributes: [{ name: "k", valueType: "STRING" }],
    },
    400,
    "HERALD_INVALID_TABLE_DEFINITION",
    /^bigTable$/,
  ],
  [
    "foreign key naming a non-unique attribute",
    "POST",
    "/v5/entities/acme/custom-tables",
    {
      name: "C",
      type: "REPOSITORY",
      attributes: [{ name: "age", valueType: "INTEGER" }],
      foreignKeys: [
        {
          attribute: "age",
          reference: { tableType: "PROFILE_TABLE", tableId: "People", attribute: "age" },
        },
      ],
    },
    422,
    "HERALD_TABLE_DEFINITION_INCONSISTENT",
    /foreignKeys\[0\]\.referencedAttribute/,
  ],
  ["malformed JSON", "POST", PROFILE_URL, "{not json", 400, "HERALD_MALFORMED_JSON", /.*/],
];

for (const { backend, skip } of await testBackends()) {
  describe(`data model bad input on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", PEOPLE);
      assert.equal(created.statusCode, 201, created.body);
    });
    after(() => t?.close());

    test("random write bodies never answer 5xx and write nothing when refused", async () => {
      const scalar = fc.oneof(
        fc.string(),
        fc.string({ unit: "binary" }),
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.constant(null),
        fc.constantFrom("a@b.cd", "\u0000", "\ud800", "9".repeat(400), "2024-02-30"),
      );
      const value = fc.oneof(
        scalar,
        fc.array(scalar, { maxLength: 3 }),
        fc.object({ maxDepth: 1 }),
      );
      const name = fc.constantFrom(
        "emailAddress",
        "age",
        "tier",
        "code",
        "profileId",
        "nope",
        "",
        "\u0000",
      );
      const body = fc.record(
        {
          attributes: fc.array(fc.record({ name, value }, { requiredKeys: ["name"] }), {
            maxLength: 4,
          }),
          subscriptions: fc.array(
            fc.record({ name: fc.constantFrom("news", "x"), subscribe: fc.boolean() }),
          ),
          segmentations: fc.array(fc.record({ category: fc.string(), name: fc.string() }), {
            maxLength: 2,
          }),
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(body, fc.constantFrom("", "?allowUpdate=true"), async (b, query) => {
          const res = await t.request("POST", `${PROFILE_URL}${query}`, b);
          assert.ok(res.statusCode < 500, `${res.statusCode} ${res.body} for ${JSON.stringify(b)}`);
          if (res.statusCode === 200) {
            await t.database.db.query("DELETE FROM records");
            await t.database.db.query("DELETE FROM change_events");
          }
        }),
        { numRuns: 150 },
      );
    });

    for (const [name, method, url, body, status, code, path] of CASES) {
      test(`${name}: ${status} ${code}, nothing written, no event`, async () => {
        const res = await t.request(method, url, body);
        assert.equal(res.statusCode, status, res.body);
        const json = res.json();
        assert.equal(json.code, code, res.body);
        assert.equal(json.status, status);
        if (status !== 404 && code !== "HERALD_MALFORMED_JSON")
          assert.ok(
            json.details.some((d: { path: string }) => path.test(d.path)),
            res.body,
          );
        const records = await t.database.db.query("SELECT 1 FROM records");
        assert.equal(records.rowCount, 0);
        const events = await t.database.db.query("SELECT 1 FROM change_events");
        assert.equal(events.rowCount, 0);
        const tables = await t.database.db.query("SELECT 1 FROM data_tables");
        assert.equal(tables.rowCount, 1);
      });
    }
  });
}
