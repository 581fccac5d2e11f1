import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ImportTestApp } from "../helpers/imports.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import { createImportTestApp } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

// SPEC §3: a record written without its primary key gets a generated one; a table defined without
// primaryKeyAttribute keys on `id`; values are answered typed. The request shapes are those of
// Actito's data-model SDK (POST without a key, read back by the returned businessKey, increment).
const TABLES = "/v5/entities/acme/custom-tables";
const ASSIGNMENTS = {
  name: "OfferAssignments",
  type: "LINKED_DATA",
  attributes: [
    { name: "offerReference", valueType: "STRING" },
    { name: "synchronized", valueType: "BOOLEAN" },
    { name: "value", valueType: "NUMBER" },
    { name: "count", valueType: "INTEGER" },
    { name: "day", valueType: "DATE" },
  ],
};
const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING" },
    { name: "amount", valueType: "NUMBER" },
  ],
};
const TICKETS = {
  name: "Tickets",
  type: "REPOSITORY",
  primaryKeyAttribute: "ticketNo",
  attributes: [
    { name: "ticketNo", valueType: "INTEGER" },
    { name: "note", valueType: "STRING" },
  ],
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type Properties = { name: string; value: unknown }[];
const props = (values: Record<string, unknown>) => ({
  properties: Object.entries(values).map(([name, value]) => ({ name, value })),
});
const asObject = (properties: Properties) =>
  Object.fromEntries(properties.map((p) => [p.name, p.value]));

for (const { backend, skip } of await testBackends()) {
  describe(`generated record keys and typed values on ${backend}`, { skip }, () => {
    let t: ImportTestApp;
    const url = "/v4/entity/acme/customTable/OfferAssignments/record";
    const eventCount = async () =>
      (await t.database.db.query("SELECT 1 FROM change_events")).rowCount;
    const recordCount = async () => (await t.database.db.query("SELECT 1 FROM records")).rowCount;

    before(async () => {
      t = await createImportTestApp(backend);
      for (const table of [ASSIGNMENTS, ORDERS, TICKETS]) {
        const res = await t.request("POST", TABLES, table);
        assert.equal(res.statusCode, 201, res.body);
      }
    });
    after(() => t?.close());

    test("a table defined without primaryKeyAttribute keys on a STRING attribute 'id'", async () => {
      const table = (await t.request("GET", `${TABLES}/OfferAssignments`)).json();
      assert.equal(table.primaryKeyAttribute, "id");
      assert.deepEqual(table.attributes[0], {
        name: "id",
        valueType: "STRING",
        unique: true,
        mandatory: true,
        multiValued: false,
        indexed: true,
      });
      // The answer is a definition that can be PUT back as it is.
      const { id: _id, ...definition } = table;
      const put = await t.request("PUT", `${TABLES}/OfferAssignments`, definition);
      assert.equal(put.statusCode, 200, put.body);
      assert.deepEqual(put.json(), table);
    });

    test("POST without a key: a generated id, usable in GET, search, PUT, DELETE and the log", async () => {
      const created = await t.request(
        "POST",
        url,
        props({
          offerReference: "springoffer",
          synchronized: "false",
          value: "5",
          day: "2024-03-01",
        }),
      );
      assert.equal(created.statusCode, 200, created.body);
      const key = created.json().businessKey as string;
      assert.match(key, UUID);

      const read = await t.request("GET", `${url}/${key}`);
      assert.equal(read.statusCode, 200, read.body);
      assert.deepEqual(read.json().properties, [
        { name: "id", value: key },
        { name: "offerReference", value: "springoffer" },
        { name: "synchronized", value: false },
        { name: "value", value: 5 },
        { name: "day", value: "2024-03-01" },
      ]);

      const found = await t.request(
        "GET",
        `${url}?searchField=id&searchValue=${key}&sortedField=id`,
      );
      assert.equal(found.statusCode, 200, found.body);
      assert.deepEqual(
        found.json().records.map((r: { properties: Properties }) => asObject(r.properties).id),
        [key],
      );

      // Actito's SDK increment: read, add, write back.
      const before = asObject(read.json().properties).value as number;
      const put = await t.request("PUT", `${url}/${key}`, props({ value: before + 1 }));
      assert.equal(put.statusCode, 200, put.body);
      assert.equal(put.json().businessKey, key);
      const after = await t.request("GET", `${url}/${key}`);
      assert.equal(asObject(after.json().properties).value, 6);

      await stampPendingEvents(t.database.db);
      const log = await t.request("GET", "/v5/entities/acme/change-events?limit=1000");
      assert.equal(log.statusCode, 200, log.body);
      const mine = (log.json().events as Record<string, unknown>[]).filter((e) => e.id === key);
      assert.deepEqual(
        mine.map((e) => (e._event as { type: string }).type),
        ["CREATE", "UPDATE"],
      );
      // Payloads keep Actito's string rendering.
      assert.equal(mine[0]!.synchronized, "false");

      const del = await t.request("DELETE", `${url}/${key}`);
      assert.equal(del.statusCode, 204, del.body);
      assert.equal((await t.request("GET", `${url}/${key}`)).statusCode, 404);
    });

    test("each POST without a key creates its own record; a given id is used as it is", async () => {
      const first = await t.request("POST", url, props({ offerReference: "a" }));
      const second = await t.request("POST", url, props({ offerReference: "a" }));
      assert.notEqual(first.json().businessKey, second.json().businessKey);
      const given = await t.request("POST", url, props({ id: "20", offerReference: "b" }));
      assert.equal(given.json().businessKey, "20");
      const update = await t.request("POST", url, props({ id: "20", offerReference: "c" }));
      assert.equal(update.json().businessKey, "20");
      const read = await t.request("GET", `${url}/20`);
      assert.equal(asObject(read.json().properties).offerReference, "c");
    });

    test("a declared STRING primary key is generated too; a key that cannot hold a UUID is 400", async () => {
      const order = await t.request(
        "POST",
        "/v4/entity/acme/customTable/Orders/record",
        props({ amount: 12.5 }),
      );
      assert.equal(order.statusCode, 200, order.body);
      const key = order.json().businessKey as string;
      assert.match(key, UUID);
      const read = await t.request("GET", `/v4/entity/acme/customTable/Orders/record/${key}`);
      assert.deepEqual(read.json().properties, [
        { name: "orderId", value: key },
        { name: "amount", value: 12.5 },
      ]);

      const [records, events] = [await recordCount(), await eventCount()];
      const ticket = await t.request(
        "POST",
        "/v4/entity/acme/customTable/Tickets/record",
        props({ note: "no key" }),
      );
      assert.equal(ticket.statusCode, 400, ticket.body);
      assert.equal(ticket.json().code, "HERALD_MISSING_MANDATORY");
      assert.match(ticket.json().details[0].message, /ticketNo.*STRING key/);
      assert.equal(await recordCount(), records);
      assert.equal(await eventCount(), events);
    });

    test("a value that does not parse as its type is 400 naming it, and changes nothing", async () => {
      const created = await t.request("POST", url, props({ value: 51, count: "7" }));
      const key = created.json().businessKey as string;
      const [records, events] = [await recordCount(), await eventCount()];
      for (const [name, value] of [
        ["value", "51x"],
        ["count", "7.5"],
        ["synchronized", "maybe"],
        ["day", "2024-02-30"],
      ] as const) {
        for (const [method, target] of [
          ["PUT", `${url}/${key}`],
          ["POST", url],
        ] as const) {
          const res = await t.request(method, target, props({ id: key, [name]: value }));
          assert.equal(res.statusCode, 400, `${method} ${name}=${value}: ${res.body}`);
          assert.equal(res.json().code, "HERALD_INVALID_VALUE");
          assert.equal(res.json().details[0].path, "properties[1].value");
        }
      }
      assert.equal(await recordCount(), records);
      assert.equal(await eventCount(), events);
      const read = await t.request("GET", `${url}/${key}`);
      assert.deepEqual(asObject(read.json().properties), { id: key, value: 51, count: 7 });
    });

    test("an unknown businessKey is 404 for GET, PUT and DELETE, and changes nothing", async () => {
      const [records, events] = [await recordCount(), await eventCount()];
      for (const method of ["GET", "PUT", "DELETE"]) {
        const res = await t.request(
          method,
          `${url}/no-such-key`,
          method === "PUT" ? props({ value: 1 }) : undefined,
        );
        assert.equal(res.statusCode, 404, `${method}: ${res.body}`);
        assert.equal(res.json().code, "HERALD_RECORD_NOT_FOUND");
      }
      assert.equal(await recordCount(), records);
      assert.equal(await eventCount(), events);
    });

    test("imports into a table keyed on id: rows with an id apply; CREATE_ONLY rows without one get a generated id", async () => {
      const target = {
        target: { tableType: "CUSTOM_TABLE", table: "OfferAssignments" },
        file: { format: "CSV" },
      };
      const withIds = await t.finished(
        await t.startImport(target, {
          name: "a.csv",
          content: "id,offerReference,value\nimp-1,x,1\nimp-2,y,2\n",
        }),
      );
      assert.equal(withIds.status, "SUCCESS", JSON.stringify(withIds));
      const read = await t.request("GET", `${url}/imp-2`);
      assert.equal(asObject(read.json().properties).value, 2);

      // As a POST without the key does: each row gets its own UUID, with its CREATE event.
      const [records, events] = [await recordCount(), await eventCount()];
      const withoutIds = await t.finished(
        await t.startImport(
          { ...target, mode: "CREATE_ONLY" },
          { name: "b.csv", content: "offerReference,value\nz,3\nz,4\n" },
        ),
      );
      assert.equal(withoutIds.status, "SUCCESS", JSON.stringify(withoutIds));
      assert.equal(withoutIds.counts.created, 2);
      assert.equal(await recordCount(), records + 2);
      const created = await t.database.db.query<{ business_key: string; attributes: unknown }>(
        `SELECT business_key, attributes FROM records
          WHERE attributes ->> 'offerReference' = 'z' ORDER BY attributes ->> 'value'`,
      );
      assert.equal(created.rows.length, 2);
      for (const [i, row] of created.rows.entries()) {
        assert.match(row.business_key, UUID);
        assert.deepEqual(row.attributes, {
          id: row.business_key,
          offerReference: "z",
          value: 3 + i,
        });
        const read = await t.request("GET", `${url}/${row.business_key}`);
        assert.equal(read.statusCode, 200, read.body);
      }
      assert.notEqual(created.rows[0]!.business_key, created.rows[1]!.business_key);
      const creates = await t.database.db.query<{ record_key: string }>(
        "SELECT record_key FROM change_events WHERE event_type = 'CREATE' ORDER BY id DESC LIMIT 2",
      );
      assert.deepEqual(
        creates.rows.map((r) => r.record_key).sort(),
        created.rows.map((r) => r.business_key).sort(),
      );
      assert.equal((await eventCount()) - events, 2 + 2); // two CREATEs, the import's STARTED and FINISHED

      // A key that cannot take a UUID (INTEGER) is still a clear rejection, and nothing is written.
      const tickets = await t.finished(
        await t.startImport(
          {
            target: { tableType: "CUSTOM_TABLE", table: "Tickets" },
            mode: "CREATE_ONLY",
            file: { format: "CSV" },
          },
          { name: "t.csv", content: "note\nno key\n" },
        ),
      );
      assert.equal(tickets.status, "WITH_ERROR", JSON.stringify(tickets));
      assert.equal(tickets.counts.created, 0);
      assert.equal(tickets.rejectedRows[0]!.code, "HERALD_MISSING_MANDATORY");
      assert.match(tickets.rejectedRows[0]!.message, /'ticketNo'/);
      assert.equal(await recordCount(), records + 2);

      const refused = await t.upload([
        { name: "etlDefinition", content: JSON.stringify(target) },
        { name: "inputFile", filename: "c.csv", content: "offerReference\nz\n" },
      ]);
      assert.equal(refused.statusCode, 400, refused.body);
      assert.match(refused.body, /key attribute 'id'/);
    });
  });
}
