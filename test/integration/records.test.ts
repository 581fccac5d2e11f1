import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  creationTimeAttribute: "createdAt",
  attributes: [
    { name: "orderId", valueType: "STRING", mandatory: true, unique: true },
    {
      name: "status",
      valueType: "STRING",
      valueRestriction: { acceptedValues: ["NEW", "SHIPPED"] },
    },
    { name: "amount", valueType: "NUMBER" },
    { name: "createdAt", valueType: "TIMESTAMP" },
    { name: "ref", valueType: "STRING", unique: true },
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
    {
      name: "big-order",
      triggerRules: [
        {
          onOperation: "CREATE",
          matchingConditions: {
            stateAfterOperation: [{ attribute: "amount", operator: ">", value: 100 }],
          },
        },
      ],
    },
  ],
};

interface EventRow {
  event_type: string;
  record_key: string;
  keys: Record<string, unknown>;
  state: Record<string, unknown>;
  fields: string[];
  previous: Record<string, unknown>;
  version: number;
  declared_events: string[];
  source: string;
  source_id: string;
}

for (const { backend, skip } of await testBackends()) {
  describe(`custom tables and records on ${backend}`, { skip }, () => {
    let t: TestApp;
    let tableId: string;
    const url = "/v4/entity/acme/customTable/Orders/record";
    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const clearEvents = () => t.database.db.query("DELETE FROM change_events");

    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    test("table structure: create, read by id and name, list, duplicate name 409", async () => {
      const created = await t.request("POST", "/v5/entities/acme/custom-tables", ORDERS);
      assert.equal(created.statusCode, 201, created.body);
      tableId = created.json().id;
      assert.match(tableId, /^[0-9a-f-]{36}$/);
      assert.equal(created.headers.location, `/v5/entities/acme/custom-tables/${tableId}`);
      const byId = await t.request("GET", `/v5/entities/acme/custom-tables/${tableId}`);
      const byName = await t.request("GET", "/v5/entities/acme/custom-tables/Orders");
      assert.deepEqual(byId.json(), byName.json());
      assert.equal(byId.json().eventsToTrigger.length, 2);
      const list = await t.request("GET", "/v5/entities/acme/custom-tables");
      assert.equal(list.json().customTables.length, 1);
      const dup = await t.request("POST", "/v5/entities/acme/custom-tables", ORDERS);
      assert.equal(dup.statusCode, 409);
      assert.equal(dup.json().code, "HERALD_NAME_TAKEN");
      const missing = await t.request("GET", "/v5/entities/acme/custom-tables/Nope");
      assert.equal(missing.statusCode, 404);
    });

    test("create: CREATE event with business key, keys, creation time and fired declared events", async () => {
      await clearEvents();
      const res = await t.request("POST", url, {
        properties: [
          { name: "orderId", value: "o-1" },
          { name: "status", value: "NEW" },
          { name: "amount", value: "150.5" },
          { name: "ref", value: "R1" },
        ],
      });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { businessKey: "o-1" });
      const [e, ...rest] = await events();
      assert.equal(rest.length, 0);
      assert.equal(e!.event_type, "CREATE");
      assert.equal(e!.source, "CUSTOM_TABLE");
      assert.equal(e!.source_id, tableId);
      assert.equal(e!.record_key, "o-1");
      assert.deepEqual(e!.keys, { orderId: "o-1", ref: "R1" });
      assert.equal(e!.state.amount, 150.5);
      assert.ok(typeof e!.state.createdAt === "string");
      assert.deepEqual(e!.declared_events, ["big-order"]);
      assert.equal(e!.version, 1);
    });

    test("update: UPDATE always appended, declaredEvents only when the rule fires; no-op is silent", async () => {
      await clearEvents();
      const put = await t.request("PUT", `${url}/o-1`, {
        properties: [{ name: "amount", value: 99 }],
      });
      assert.equal(put.statusCode, 200, put.body);
      const ship = await t.request("POST", url, {
        properties: [
          { name: "orderId", value: "o-1" },
          { name: "status", value: "SHIPPED" },
        ],
      });
      assert.equal(ship.statusCode, 200);
      const same = await t.request("PUT", `${url}/o-1`, {
        properties: [{ name: "status", value: "SHIPPED" }],
      });
      assert.equal(same.statusCode, 200);
      const rows = await events();
      assert.deepEqual(
        rows.map((r) => [r.event_type, r.fields, r.previous, r.declared_events, r.version]),
        [
          ["UPDATE", ["amount"], { amount: 150.5 }, [], 2],
          ["UPDATE", ["status"], { status: "NEW" }, ["order-shipped"], 3],
        ],
      );
    });

    test("read, search, sort, delete", async () => {
      for (const [id, amount] of [
        ["o-2", 5],
        ["o-3", 500],
      ] as const) {
        const r = await t.request("POST", url, {
          properties: [
            { name: "orderId", value: id },
            { name: "amount", value: amount },
            { name: "status", value: "NEW" },
          ],
        });
        assert.equal(r.statusCode, 200);
      }
      const read = await t.request("GET", `${url}/o-1`);
      assert.deepEqual(
        read.json().properties.find((p: { name: string }) => p.name === "amount"),
        { name: "amount", value: 99 },
      );
      const sorted = await t.request("GET", `${url}?sortedField=amount&ascending=false&number=2`);
      assert.equal(sorted.statusCode, 200, sorted.body);
      const ids = sorted
        .json()
        .records.map(
          (r: { properties: { name: string; value: string }[] }) => r.properties[0]!.value,
        );
      assert.deepEqual(ids, ["o-3", "o-1"]);
      const found = await t.request("GET", `${url}?searchField=status&searchValue=NEW`);
      assert.equal(found.json().records.length, 2);
      await clearEvents();
      const del = await t.request("DELETE", `${url}/o-2`);
      assert.equal(del.statusCode, 204);
      const [e] = await events();
      assert.equal(e!.event_type, "DELETE");
      assert.equal(e!.state.amount, 5);
      assert.equal((await t.request("GET", `${url}/o-2`)).statusCode, 404);
      assert.equal((await t.request("DELETE", `${url}/o-2`)).statusCode, 404);
    });

    test("a taken unique value is 409; changing the business key is 400; nothing is written", async () => {
      await clearEvents();
      const taken = await t.request("POST", url, {
        properties: [
          { name: "orderId", value: "o-9" },
          { name: "ref", value: "R1" },
        ],
      });
      assert.equal(taken.statusCode, 409);
      assert.equal(taken.json().code, "HERALD_UNIQUE_KEY_TAKEN");
      assert.match(taken.json().details[0].path, /ref/);
      assert.equal((await t.request("GET", `${url}/o-9`)).statusCode, 404);
      const rekey = await t.request("PUT", `${url}/o-1`, {
        properties: [{ name: "orderId", value: "o-7" }],
      });
      assert.equal(rekey.statusCode, 400);
      assert.equal((await events()).length, 0);
    });

    test("concurrent upserts of one new business key: one CREATE, the rest updates, never a 500", async () => {
      await clearEvents();
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          t.request("POST", url, {
            properties: [
              { name: "orderId", value: "race" },
              { name: "amount", value: i + 1 },
            ],
          }),
        ),
      );
      for (const r of results) assert.equal(r.statusCode, 200, r.body);
      const rows = await events();
      assert.equal(rows.filter((r) => r.event_type === "CREATE").length, 1);
      assert.ok(rows.every((r) => r.record_key === "race"));
      assert.deepEqual(
        rows.map((r) => r.version),
        rows.map((_, i) => i + 1),
      );
    });

    test("table PUT keeps keys while records exist (422); DELETE removes the table and its records from the API", async () => {
      const changed = {
        ...ORDERS,
        attributes: ORDERS.attributes.map((a) => (a.name === "ref" ? { ...a, unique: false } : a)),
      };
      const put = await t.request("PUT", `/v5/entities/acme/custom-tables/${tableId}`, changed);
      assert.equal(put.statusCode, 422, put.body);
      const addAttr = {
        ...ORDERS,
        attributes: [...ORDERS.attributes, { name: "note", valueType: "STRING" }],
      };
      const ok = await t.request("PUT", "/v5/entities/acme/custom-tables/Orders", addAttr);
      assert.equal(ok.statusCode, 200, ok.body);
      const note = await t.request("PUT", `${url}/o-1`, {
        properties: [{ name: "note", value: "hi" }],
      });
      assert.equal(note.statusCode, 200, note.body);
      const del = await t.request("DELETE", `/v5/entities/acme/custom-tables/${tableId}`);
      assert.equal(del.statusCode, 204);
      // How the stored records go (and their DELETE events) is table-deletion.test.ts's subject.
      assert.equal((await t.request("GET", `${url}/o-1`)).statusCode, 404);
      const gone = await t.request("GET", `/v5/entities/acme/custom-tables/${tableId}`);
      assert.equal(gone.statusCode, 404);
    });
  });
}
