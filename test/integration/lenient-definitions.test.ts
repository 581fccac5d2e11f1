import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

// SPEC §3: table definitions are read as Actito's JSON definition files are written; foreign keys
// may name any unique attribute; the v4 structure reads answer.
const PROFILES = "/v5/entities/acme/profile-tables";
const TABLES = "/v5/entities/acme/custom-tables";
const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true },
    { name: "customerNo", type: "CUSTOM", valueType: "LONG", unique: true },
    { name: "city", type: "CUSTOM", valueType: "STRING" },
  ],
};
/** An Actito definition file, as its documentation shows one, with two keys Herald does not know. */
const ONLINE_ORDERS = {
  name: "OnlineOrders",
  entityName: "acme",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  creationTimeAttribute: "orderMoment",
  compositeKey: null,
  bigTable: false,
  displayOptions: { color: "blue" },
  capabilityDTOs: [{ name: "Interaction" }],
  attributes: [
    { name: "orderId", valueType: "STRING", mandatory: true, indexed: true, unique: true },
    { name: "customerNo", valueType: "LONG", mandatory: false, indexed: true, unique: false },
    { name: "orderMoment", valueType: "TIMESTAMP", valueRestriction: null },
    { name: "amount", valueType: "NUMBER", displayOptions: { format: "0.00" }, cacheIndexed: true },
  ],
  valueAttribute: "amount",
  foreignKeys: [
    {
      name: "link-to-customer",
      attribute: "customerNo",
      reference: { tableType: "PROFILE_TABLE", tableId: "Customers", attribute: "customerNo" },
      onDelete: "CASCADE",
    },
  ],
};
const basic = `Basic ${Buffer.from(`herald/admin:${TEST_ADMIN_KEY}`).toString("base64")}`;

for (const { backend, skip } of await testBackends()) {
  describe(`lenient table definitions on ${backend}`, { skip }, () => {
    let t: TestApp;
    let customersId = "";
    const tableCount = async () =>
      (await t.database.db.query("SELECT 1 FROM data_tables")).rowCount;
    const eventCount = async () =>
      (await t.database.db.query("SELECT 1 FROM change_events")).rowCount;
    const profile = async (email: string, customerNo: number) => {
      const res = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
        attributes: [
          { name: "emailAddress", value: email },
          { name: "customerNo", value: customerNo },
        ],
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().profileId as number;
    };
    const order = (properties: Record<string, unknown>) =>
      t.request("POST", "/v4/entity/acme/customTable/OnlineOrders/record", {
        properties: Object.entries(properties).map(([name, value]) => ({ name, value })),
      });

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", PROFILES, CUSTOMERS);
      assert.equal(created.statusCode, 201, created.body);
      customersId = created.json().id;
    });
    after(() => t?.close());

    test("Actito's definition file is accepted: its keys kept, unknown keys warned in details", async () => {
      const res = await t.request("POST", TABLES, ONLINE_ORDERS);
      assert.equal(res.statusCode, 201, res.body);
      const created = res.json();
      assert.deepEqual(created.details, [
        { path: "capabilityDTOs", message: "is not a key of a table definition: ignored" },
        { path: "attributes[3].cacheIndexed", message: "is not a key of an attribute: ignored" },
      ]);
      const read = (await t.request("GET", `${TABLES}/OnlineOrders`)).json();
      assert.equal(read.details, undefined);
      const { details: _details, ...stored } = created;
      assert.deepEqual(read, stored);
      assert.equal(read.entityName, "acme");
      assert.equal(read.bigTable, false);
      assert.equal(read.compositeKey, undefined);
      assert.equal(read.valueAttribute, "amount");
      assert.deepEqual(read.displayOptions, { color: "blue" });
      assert.deepEqual(read.attributes[3].displayOptions, { format: "0.00" });
      assert.deepEqual(read.foreignKeys, [
        {
          name: "link-to-customer",
          attribute: "customerNo",
          referencedTable: { kind: "PROFILE_TABLE", id: customersId },
          referencedAttribute: "customerNo",
          onDelete: "CASCADE",
          reference: { tableType: "PROFILE_TABLE", tableId: customersId, attribute: "customerNo" },
        },
      ]);
      // What GET answers can be PUT back, with no warning.
      const { id: _id, ...definition } = read;
      const put = await t.request("PUT", `${TABLES}/OnlineOrders`, definition);
      assert.equal(put.statusCode, 200, put.body);
      assert.equal(put.json().details, undefined);
    });

    test("an entityName naming another entity is kept with a warning; the path decides", async () => {
      const res = await t.request("POST", TABLES, {
        name: "Elsewhere",
        entityName: "other",
        type: "REPOSITORY",
        attributes: [{ name: "code", valueType: "STRING" }],
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual(
        res.json().details.map((d: { path: string }) => d.path),
        ["entityName"],
      );
      assert.equal(res.json().primaryKeyAttribute, "id");
    });

    test("definition keys of the wrong type are 400, names of nothing 422; nothing is created", async () => {
      const before = await tableCount();
      const cases: [Record<string, unknown>, number, string][] = [
        [{ bigTable: "yes" }, 400, "bigTable"],
        [{ compositeKey: 3 }, 400, "compositeKey"],
        [{ displayOptions: "wide" }, 400, "displayOptions"],
        [{ entityName: 12 }, 400, "entityName"],
        [{ valueAttribute: "ghost" }, 422, "valueAttribute"],
        [{ compositeKey: ["orderId", "ghost"] }, 422, "compositeKey[1]"],
        [
          {
            foreignKeys: [
              {
                attribute: "customerNo",
                reference: { tableType: "PROFILE_TABLE", tableId: "Customers", attribute: "city" },
              },
            ],
          },
          422,
          "foreignKeys[0].referencedAttribute",
        ],
        [
          {
            foreignKeys: [
              {
                attribute: "customerNo",
                reference: {
                  tableType: "PROFILE_TABLE",
                  tableId: "Customers",
                  attribute: "emailAddress",
                },
              },
            ],
          },
          422,
          "foreignKeys[0].attribute",
        ],
      ];
      for (const [change, status, path] of cases) {
        const res = await t.request("POST", TABLES, { ...ONLINE_ORDERS, name: "Bad", ...change });
        assert.equal(res.statusCode, status, `${JSON.stringify(change)}: ${res.body}`);
        assert.equal(
          res.json().code,
          status === 400
            ? "HERALD_INVALID_TABLE_DEFINITION"
            : "HERALD_TABLE_DEFINITION_INCONSISTENT",
        );
        assert.ok(
          res.json().details.some((d: { path: string }) => d.path === path),
          `${path} in ${res.body}`,
        );
      }
      assert.equal(await tableCount(), before);
    });

    test("a foreign key by a unique attribute: checked on writes, followed on delete, held while used", async () => {
      const ann = await profile("ann@example.com", 1001);
      const missing = await order({ orderId: "o-missing", customerNo: 4242 });
      assert.equal(missing.statusCode, 422, missing.body);
      assert.equal(missing.json().code, "HERALD_REFERENCED_RECORD_NOT_FOUND");
      assert.equal(missing.json().details[0].path, "properties.customerNo");
      assert.equal((await order({ orderId: "o-1", customerNo: 1001 })).statusCode, 200);
      assert.equal((await order({ orderId: "o-2", customerNo: 1001 })).statusCode, 200);

      // Deleting Ann cascades by her customerNo.
      const del = await t.request("DELETE", `/v4/entity/acme/table/Customers/profile/${ann}`);
      assert.equal(del.statusCode, 204, del.body);
      for (const key of ["o-1", "o-2"])
        assert.equal(
          (await t.request("GET", `/v4/entity/acme/customTable/OnlineOrders/record/${key}`))
            .statusCode,
          404,
        );
    });

    test("a custom record's unique value that others refer to cannot change (409, nothing written)", async () => {
      const stores = {
        name: "Stores",
        type: "REPOSITORY",
        primaryKeyAttribute: "storeId",
        attributes: [
          { name: "storeId", valueType: "STRING" },
          { name: "code", valueType: "STRING", unique: true },
        ],
      };
      const visits = {
        name: "Visits",
        type: "INTERACTIONS",
        attributes: [{ name: "storeCode", valueType: "STRING" }],
        foreignKeys: [
          {
            attribute: "storeCode",
            reference: { tableType: "CUSTOM_TABLE", tableId: "Stores", attribute: "code" },
          },
        ],
      };
      assert.equal((await t.request("POST", TABLES, stores)).statusCode, 201);
      assert.equal((await t.request("POST", TABLES, visits)).statusCode, 201);
      const storeUrl = "/v4/entity/acme/customTable/Stores/record";
      const props = (values: Record<string, unknown>) => ({
        properties: Object.entries(values).map(([name, value]) => ({ name, value })),
      });
      assert.equal(
        (await t.request("POST", storeUrl, props({ storeId: "s1", code: "BRU" }))).statusCode,
        200,
      );
      const visit = await t.request(
        "POST",
        "/v4/entity/acme/customTable/Visits/record",
        props({ storeCode: "BRU" }),
      );
      assert.equal(visit.statusCode, 200, visit.body);
      const events = await eventCount();
      for (const [method, url, body] of [
        ["PUT", `${storeUrl}/s1`, props({ code: "ANR" })],
        ["POST", storeUrl, props({ storeId: "s1", code: "ANR" })],
        ["PUT", `${storeUrl}/s1`, props({ code: null })],
      ] as const) {
        const res = await t.request(method, url, body);
        assert.equal(res.statusCode, 409, `${method}: ${res.body}`);
        assert.equal(res.json().code, "HERALD_REFERENCED_VALUE_IN_USE");
      }
      assert.equal(await eventCount(), events);
      const store = await t.request("GET", `${storeUrl}/s1`);
      assert.deepEqual(store.json().properties, [
        { name: "storeId", value: "s1" },
        { name: "code", value: "BRU" },
      ]);
      // Once nothing refers to the old value, it may change.
      const visitKey = visit.json().businessKey as string;
      const gone = await t.request(
        "DELETE",
        `/v4/entity/acme/customTable/Visits/record/${visitKey}`,
      );
      assert.equal(gone.statusCode, 204);
      assert.equal(
        (await t.request("PUT", `${storeUrl}/s1`, props({ code: "ANR" }))).statusCode,
        200,
      );
    });

    test("v4 structure reads answer the lists and one table, bearer or HTTP Basic", async () => {
      const custom = await t.request("GET", "/v4/entity/acme/customTable");
      assert.equal(custom.statusCode, 200, custom.body);
      const v5custom = (await t.request("GET", TABLES)).json();
      assert.deepEqual(custom.json(), v5custom);
      const one = await t.request("GET", "/v4/entity/acme/customTable/OnlineOrders");
      assert.deepEqual(one.json(), (await t.request("GET", `${TABLES}/OnlineOrders`)).json());

      const profiles = await t.request("GET", "/v4/entity/acme/table");
      assert.deepEqual(profiles.json(), (await t.request("GET", PROFILES)).json());
      const structure = await t.request("GET", "/v4/entity/acme/table/Customers");
      assert.equal(structure.statusCode, 200, structure.body);
      assert.deepEqual(
        structure.json(),
        (await t.request("GET", `${PROFILES}/${customersId}`)).json(),
      );

      for (const path of ["customTable", "customTable/OnlineOrders", "table", "table/Customers"]) {
        const legacy = await t.app.inject({
          method: "GET",
          url: `/ActitoWebServices/ws/v4/entity/acme/${path}`,
          headers: { authorization: basic },
        });
        assert.equal(legacy.statusCode, 200, `${path}: ${legacy.body}`);
        assert.deepEqual(legacy.json(), (await t.request("GET", `/v4/entity/acme/${path}`)).json());
      }
      for (const path of ["customTable/Nope", "table/Nope", "table/OnlineOrders"]) {
        const res = await t.request("GET", `/v4/entity/acme/${path}`);
        assert.equal(res.statusCode, 404, `${path}: ${res.body}`);
        assert.equal(res.json().code, "HERALD_TABLE_NOT_FOUND");
      }
      assert.equal((await t.request("GET", "/v4/entity/nowhere/customTable")).statusCode, 404);
    });
  });
}
