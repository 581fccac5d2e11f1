import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const BASE = "/v5/entities/acme/profile-tables";
const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [{ name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] }],
};

for (const { backend, skip } of await testBackends()) {
  describe(`profile table structure on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    test("create answers 201 with a short numeric id and the normalised definition", async () => {
      const res = await t.request("POST", BASE, CUSTOMERS);
      assert.equal(res.statusCode, 201, res.body);
      const table = res.json();
      assert.match(table.id, /^\d+$/);
      assert.equal(res.headers.location, `${BASE}/${table.id}`);
      assert.deepEqual(table.attributes[0], {
        name: "emailAddress",
        type: "EMAIL_ADDRESS",
        valueType: "STRING",
        unique: true,
        mandatory: true,
        multiValued: false,
      });
      assert.deepEqual(table.subscriptions, [{ name: "newsletter" }]);
      const second = await t.request("POST", BASE, { ...CUSTOMERS, name: "Prospects" });
      assert.equal(Number(second.json().id), Number(table.id) + 1);
    });

    test("read by id and by name, list, 404 for an unknown table or entity", async () => {
      const byName = await t.request("GET", `${BASE}/Customers`);
      assert.equal(byName.statusCode, 200);
      const byId = await t.request("GET", `${BASE}/${byName.json().id}`);
      assert.deepEqual(byId.json(), byName.json());
      const list = await t.request("GET", BASE);
      assert.deepEqual(
        list.json().profileTables.map((p: { name: string }) => p.name),
        ["Customers", "Prospects"],
      );
      assert.equal((await t.request("GET", `${BASE}/Nope`)).statusCode, 404);
      const otherEntity = await t.request("GET", "/v5/entities/nope/profile-tables");
      assert.equal(otherEntity.statusCode, 404);
      assert.equal(otherEntity.json().code, "HERALD_ENTITY_NOT_FOUND");
    });

    test("PUT adds an attribute that profile writes accept at once (the definition cache is forgotten)", async () => {
      const url = "/v4/entity/acme/table/Customers/profile";
      const first = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "a@b.cd" }],
      });
      assert.equal(first.statusCode, 200);
      const refused = await t.request("PUT", `${url}/${first.json().profileId}`, {
        attributes: [{ name: "city", value: "Liège" }],
      });
      assert.equal(refused.statusCode, 400);
      const put = await t.request("PUT", `${BASE}/Customers`, {
        ...CUSTOMERS,
        attributes: [
          ...CUSTOMERS.attributes,
          { name: "city", type: "CUSTOM", valueType: "STRING" },
        ],
      });
      assert.equal(put.statusCode, 200, put.body);
      const accepted = await t.request("PUT", `${url}/${first.json().profileId}`, {
        attributes: [{ name: "city", value: "Liège" }],
      });
      assert.equal(accepted.statusCode, 200, accepted.body);
    });

    test("PUT may not change unique attributes under existing profiles; renaming onto another table is 409", async () => {
      const noUnique = {
        ...CUSTOMERS,
        attributes: [{ name: "emailAddress", type: "EMAIL_ADDRESS", mandatory: true }],
      };
      const res = await t.request("PUT", `${BASE}/Customers`, noUnique);
      assert.equal(res.statusCode, 422);
      assert.equal(res.json().code, "HERALD_TABLE_DEFINITION_INCONSISTENT");
      const rename = await t.request("PUT", `${BASE}/Prospects`, CUSTOMERS);
      assert.equal(rename.statusCode, 409);
      assert.equal(rename.json().code, "HERALD_NAME_TAKEN");
    });

    test("DELETE removes the table from the API; writes to it are then 404; its name is free", async () => {
      const del = await t.request("DELETE", `${BASE}/Customers`);
      assert.equal(del.statusCode, 204);
      assert.equal((await t.request("DELETE", `${BASE}/Customers`)).statusCode, 404);
      const write = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
        attributes: [{ name: "emailAddress", value: "z@b.cd" }],
      });
      assert.equal(write.statusCode, 404);
      // Its profiles go with the table deletion job, each with a DELETE event
      // (test/integration/table-deletion.test.ts); the name can be used again at once.
      const again = await t.request("POST", BASE, CUSTOMERS);
      assert.equal(again.statusCode, 201, again.body);
      assert.equal((await t.request("DELETE", `${BASE}/Customers`)).statusCode, 204);
    });
  });
}
