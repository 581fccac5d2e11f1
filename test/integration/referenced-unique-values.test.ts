import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseProfileInput } from "../../src/capture/profile-writer.js";
import { ProfileUpserts } from "../../src/capture/profile-upsert.js";
import type { DataTable } from "../../src/domain/data-table.js";
import { HeraldError } from "../../src/domain/errors.js";
import { findTable } from "../../src/storage/data-table-repository.js";
import type { ImportTestApp } from "../helpers/imports.js";
import { createImportTestApp } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

// SPEC §3 (foreign keys by a unique attribute): a profile's unique value that a custom table's
// foreign key names cannot change or be cleared while records refer to it, on every profile write
// path (v4 PUT and POST upsert, v5 upsert, group-committed upserts) and in imports; profile deletes
// follow onDelete by that value.
const PROFILES = "/v5/entities/acme/profile-tables";
const TABLES = "/v5/entities/acme/custom-tables";
const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "customerNo", type: "CUSTOM", valueType: "LONG", unique: true },
    { name: "city", type: "CUSTOM", valueType: "STRING" },
  ],
};
const byCustomerNo = (onDelete: string) => [
  {
    attribute: "customerNo",
    reference: { tableType: "PROFILE_TABLE", tableId: "Customers", attribute: "customerNo" },
    onDelete,
  },
];
const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING" },
    { name: "customerNo", valueType: "LONG" },
  ],
  foreignKeys: byCustomerNo("RESTRICT"),
};
const NOTES = {
  name: "Notes",
  type: "LINKED_DATA",
  primaryKeyAttribute: "noteId",
  attributes: [
    { name: "noteId", valueType: "STRING" },
    { name: "customerNo", valueType: "LONG" },
  ],
  foreignKeys: byCustomerNo("SET_NULL"),
};
const STORES = {
  name: "Stores",
  type: "REPOSITORY",
  primaryKeyAttribute: "storeId",
  attributes: [
    { name: "storeId", valueType: "STRING" },
    { name: "code", valueType: "STRING", unique: true },
  ],
};
const VISITS = {
  name: "Visits",
  type: "INTERACTIONS",
  primaryKeyAttribute: "visitId",
  attributes: [
    { name: "visitId", valueType: "STRING" },
    { name: "storeCode", valueType: "STRING" },
  ],
  foreignKeys: [
    {
      attribute: "storeCode",
      reference: { tableType: "CUSTOM_TABLE", tableId: "Stores", attribute: "code" },
    },
  ],
};

const V4 = "/v4/entity/acme/table/Customers/profile";
const attrs = (values: Record<string, unknown>) => ({
  attributes: Object.entries(values).map(([name, value]) => ({ name, value })),
});
const props = (values: Record<string, unknown>) => ({
  properties: Object.entries(values).map(([name, value]) => ({ name, value })),
});

for (const { backend, skip } of await testBackends()) {
  describe(`referenced unique values of profiles on ${backend}`, { skip }, () => {
    let t: ImportTestApp;
    let customers: DataTable;
    const eventCount = async () =>
      (await t.database.db.query("SELECT 1 FROM change_events WHERE source <> 'ETL'")).rowCount;
    /** The stored profile, as the database holds it (attributes, version, key rows). */
    const stored = async (profileId: number) => {
      const { rows } = await t.database.db.query<{ attributes: unknown; version: number }>(
        "SELECT attributes, version FROM records WHERE record_id = $1",
        [profileId],
      );
      const keys = await t.database.db.query<{ attribute: string; value: string }>(
        "SELECT attribute, value FROM record_keys WHERE record_id = $1 ORDER BY attribute",
        [profileId],
      );
      return { ...rows[0], keys: keys.rows };
    };
    const profile = async (email: string, customerNo: number | null) => {
      const res = await t.request("POST", V4, attrs({ emailAddress: email, customerNo }));
      assert.equal(res.statusCode, 200, res.body);
      return res.json().profileId as number;
    };
    const record = async (table: string, values: Record<string, unknown>) => {
      const res = await t.request("POST", `/v4/entity/acme/customTable/${table}/record`, {
        ...props(values),
      });
      assert.equal(res.statusCode, 200, res.body);
    };
    const readRecord = (table: string, key: string) =>
      t.request("GET", `/v4/entity/acme/customTable/${table}/record/${key}`);

    before(async () => {
      t = await createImportTestApp(backend);
      const created = await t.request("POST", PROFILES, CUSTOMERS);
      assert.equal(created.statusCode, 201, created.body);
      for (const table of [ORDERS, NOTES, STORES, VISITS]) {
        const res = await t.request("POST", TABLES, table);
        assert.equal(res.statusCode, 201, res.body);
      }
      customers = (await findTable(t.database.db, 1, "PROFILE_TABLE", String(created.json().id)))!;
    });
    after(() => t?.close());

    test("a referenced customerNo cannot change or be cleared through any profile write (409, nothing written)", async () => {
      const ann = await profile("ann@example.com", 1001);
      await record("Orders", { orderId: "o-ann", customerNo: 1001 });
      const before = await stored(ann);
      const events = await eventCount();
      const v5 = "/v5/entities/acme/profile-tables/Customers/profiles";
      for (const [label, method, url, body] of [
        ["v4 PUT", "PUT", `${V4}/${ann}`, attrs({ customerNo: 2002 })],
        ["v4 PUT by key", "PUT", `${V4}/emailAddress=ann@example.com`, attrs({ customerNo: 2002 })],
        ["v4 PUT clearing it", "PUT", `${V4}/${ann}`, attrs({ customerNo: null })],
        [
          "v4 upsert",
          "POST",
          `${V4}?allowUpdate=true`,
          attrs({ emailAddress: "ann@example.com", customerNo: 2002, city: "Ghent" }),
        ],
        [
          "v5 upsert by key",
          "PUT",
          v5,
          { key: { emailAddress: "ann@example.com" }, attributes: { customerNo: 2002 } },
        ],
        [
          "v5 update by profileId",
          "PUT",
          v5,
          { key: { profileId: ann }, attributes: { customerNo: null } },
        ],
      ] as const) {
        const res = await t.request(method, url, body);
        assert.equal(res.statusCode, 409, `${label}: ${res.body}`);
        assert.equal(res.json().code, "HERALD_REFERENCED_VALUE_IN_USE", label);
        assert.match(res.json().message, /customerNo '1001'.*'Orders'/, label);
        assert.equal(res.json().details[0].path, "Orders.customerNo", label);
      }
      assert.deepEqual(await stored(ann), before);
      assert.equal(await eventCount(), events);

      // What the foreign key does not name still changes: another unique value, a plain one.
      const other = await t.request(
        "PUT",
        `${V4}/${ann}`,
        attrs({ emailAddress: "ann@example.org", city: "Liège" }),
      );
      assert.equal(other.statusCode, 200, other.body);
      // Once nothing refers to 1001, it may change.
      const gone = await t.request("DELETE", "/v4/entity/acme/customTable/Orders/record/o-ann");
      assert.equal(gone.statusCode, 204, gone.body);
      const changed = await t.request("PUT", `${V4}/${ann}`, attrs({ customerNo: 2002 }));
      assert.equal(changed.statusCode, 200, changed.body);
      assert.deepEqual(
        (await stored(ann)).keys.map((k) => [k.attribute, k.value]),
        [
          ["customerNo", "2002"],
          ["emailAddress", "ann@example.org"],
        ],
      );
    });

    test("in a group-committed batch, the refused upsert fails alone; the others commit", async () => {
      const bob = await profile("bob@example.com", 3001);
      const cy = await profile("cy@example.com", 3002);
      await profile("hal@example.com", 3003);
      await record("Orders", { orderId: "o-bob", customerNo: 3001 });
      const bobBefore = await stored(bob);
      const events = await eventCount();
      const origin = { kind: "SYSTEM" } as const;
      // One batcher for the four: they are submitted together, so they share statements.
      const upserts = new ProfileUpserts(t.database);
      const results = await Promise.all(
        [
          { emailAddress: "bob@example.com", customerNo: 3901 },
          { emailAddress: "cy@example.com", customerNo: 3902 },
          { emailAddress: "hal@example.com", city: "Namur" },
          { emailAddress: "dee@example.com", customerNo: 3903 },
        ].map((values) =>
          upserts
            .upsert(customers, parseProfileInput(customers, attrs(values)), {
              allowUpdate: true,
              origin,
            })
            .then(
              (r) => r.outcome,
              (error: unknown) => (error instanceof HeraldError ? error.code : String(error)),
            ),
        ),
      );
      assert.deepEqual(results, [
        "HERALD_REFERENCED_VALUE_IN_USE",
        "UPDATED",
        "UPDATED",
        "CREATED",
      ]);
      assert.deepEqual(await stored(bob), bobBefore);
      assert.equal(
        (await stored(cy)).keys.find((k) => k.attribute === "customerNo")?.value,
        "3902",
      );
      // Cy's and Hal's UPDATE and Dee's CREATE; nothing for Bob.
      assert.equal(await eventCount(), events + 3);
    });

    test("a reference by e-mail address is written as the profile stores it (lower case), or 422 says so", async () => {
      const created = await t.request("POST", TABLES, {
        name: "Tickets",
        type: "INTERACTIONS",
        primaryKeyAttribute: "ticketId",
        attributes: [
          { name: "ticketId", valueType: "STRING" },
          { name: "email", valueType: "STRING" },
        ],
        foreignKeys: [
          {
            attribute: "email",
            reference: {
              tableType: "PROFILE_TABLE",
              tableId: "Customers",
              attribute: "emailAddress",
            },
          },
        ],
      });
      assert.equal(created.statusCode, 201, created.body);
      await profile("Mixed.Case@Example.com", null);
      const before = await eventCount();
      const refused = await t.request("POST", "/v4/entity/acme/customTable/Tickets/record", {
        ...props({ ticketId: "t1", email: "Mixed.Case@Example.com" }),
      });
      assert.equal(refused.statusCode, 422, refused.body);
      const error = refused.json() as { code: string; details: { message: string }[] };
      assert.equal(error.code, "HERALD_REFERENCED_RECORD_NOT_FOUND");
      assert.match(error.details[0]!.message, /write it as stored: 'mixed\.case@example\.com'/);
      assert.equal(await eventCount(), before);
      await record("Tickets", { ticketId: "t1", email: "mixed.case@example.com" });
      // Now referred to: the profile's address cannot change under it.
      const moved = await t.request(
        "PUT",
        `${V4}/emailAddress=mixed.case@example.com`,
        attrs({ emailAddress: "other@example.com" }),
      );
      assert.equal(moved.statusCode, 409, moved.body);
    });

    test("profile deletes follow onDelete by the value: RESTRICT refuses, SET_NULL empties", async () => {
      const eve = await profile("eve@example.com", 4001);
      await record("Orders", { orderId: "o-eve", customerNo: 4001 });
      await record("Notes", { noteId: "n-eve", customerNo: 4001 });
      const events = await eventCount();
      const refused = await t.request("DELETE", `${V4}/${eve}`);
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(refused.json().code, "HERALD_RECORD_REFERENCED");
      assert.equal(refused.json().details[0].path, "Orders.customerNo");
      assert.equal(await eventCount(), events);
      assert.equal((await readRecord("Notes", "n-eve")).statusCode, 200);

      assert.equal(
        (await t.request("DELETE", "/v4/entity/acme/customTable/Orders/record/o-eve")).statusCode,
        204,
      );
      const deleted = await t.request("DELETE", `${V4}/${eve}`);
      assert.equal(deleted.statusCode, 204, deleted.body);
      const note = await readRecord("Notes", "n-eve");
      assert.deepEqual(note.json().properties, [{ name: "noteId", value: "n-eve" }]);
    });

    test("an import row that changes a referenced unique value is rejected with the API's code; the other rows apply", async () => {
      const fay = await profile("fay@example.com", 5001);
      const gus = await profile("gus@example.com", 5002);
      await record("Orders", { orderId: "o-fay", customerNo: 5001 });
      const fayBefore = await stored(fay);
      const events = await eventCount();
      const execution = await t.finished(
        await t.startImport(
          {
            target: { tableType: "PROFILE_TABLE", table: "Customers" },
            keyAttribute: "emailAddress",
            file: { format: "CSV" },
          },
          {
            name: "customers.csv",
            content:
              "emailAddress,customerNo,city\n" +
              "fay@example.com,5901,Mons\n" +
              "gus@example.com,5902,Mons\n" +
              "fay@example.com,,Mons\n",
          },
        ),
      );
      assert.equal(execution.status, "WITH_ERROR", JSON.stringify(execution));
      assert.deepEqual(execution.counts, {
        read: 3,
        created: 0,
        updated: 1,
        unchanged: 0,
        rejected: 2,
      });
      for (const [i, line] of [
        [0, 2],
        [1, 4],
      ] as const) {
        const row = execution.rejectedRows[i]!;
        assert.equal(row.line, line);
        assert.equal(row.code, "HERALD_REFERENCED_VALUE_IN_USE");
        assert.equal(row.column, "customerNo");
        assert.match(
          row.message,
          /customerNo '5001'.*table 'Orders'.*change or delete those records first/,
        );
      }
      assert.deepEqual(await stored(fay), fayBefore);
      assert.equal(
        (await stored(gus)).keys.find((k) => k.attribute === "customerNo")?.value,
        "5902",
      );
      assert.equal(await eventCount(), events + 1);
    });

    test("an import row that changes a custom record's referenced unique value is rejected too", async () => {
      await record("Stores", { storeId: "s1", code: "BRU" });
      await record("Stores", { storeId: "s2", code: "GNT" });
      await record("Visits", { visitId: "v1", storeCode: "BRU" });
      const events = await eventCount();
      const execution = await t.finished(
        await t.startImport(
          { target: { tableType: "CUSTOM_TABLE", table: "Stores" }, file: { format: "CSV" } },
          { name: "stores.csv", content: "storeId,code\ns1,ANR\ns2,LGG\n" },
        ),
      );
      assert.equal(execution.status, "WITH_ERROR", JSON.stringify(execution));
      assert.equal(execution.counts.updated, 1);
      assert.equal(execution.rejectedRows.length, 1);
      const row = execution.rejectedRows[0]!;
      assert.equal(row.line, 2);
      assert.equal(row.code, "HERALD_REFERENCED_VALUE_IN_USE");
      assert.equal(row.column, "code");
      assert.match(row.message, /code 'BRU'.*table 'Visits'/);
      assert.deepEqual((await readRecord("Stores", "s1")).json().properties, [
        { name: "storeId", value: "s1" },
        { name: "code", value: "BRU" },
      ]);
      assert.equal((await readRecord("Stores", "s2")).json().properties[1].value, "LGG");
      assert.equal(await eventCount(), events + 1);
    });
  });
}
