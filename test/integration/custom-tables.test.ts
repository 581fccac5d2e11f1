import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseRecordInput, upsertCustomRecord } from "../../src/capture/custom-record-writer.js";
import { TableCache } from "../../src/api/table-cache.js";
import { HeraldError } from "../../src/domain/errors.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const BASE = "/v5/entities/acme/custom-tables";
const TICKETS = {
  name: "Tickets",
  type: "REPOSITORY",
  primaryKeyAttribute: "ticketId",
  attributes: [
    { name: "ticketId", valueType: "LONG" },
    { name: "state", valueType: "STRING" },
    { name: "tags", valueType: "STRING", multiValued: true },
  ],
};
const CLOSED = {
  name: "ticket-closed",
  triggerRules: [
    {
      onOperation: "UPDATE",
      matchingConditions: {
        stateAfterOperation: [{ attribute: "state", operator: "=", value: "CLOSED" }],
        stateBeforeOperation: [{ attribute: "state", operator: "CHANGED" }],
      },
    },
    { onOperation: "DELETE" },
  ],
};

for (const { backend, skip } of await testBackends()) {
  describe(`custom table structure on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    test("a definition round-trips: primary key forced unique and mandatory, no foreign keys", async () => {
      const res = await t.request("POST", BASE, TICKETS);
      assert.equal(res.statusCode, 201, res.body);
      const table = res.json();
      assert.equal(table.type, "REPOSITORY");
      assert.deepEqual(
        table.attributes.map((a: { unique: boolean; mandatory: boolean }) => [
          a.unique,
          a.mandatory,
        ]),
        [
          [true, true],
          [false, false],
          [false, false],
        ],
      );
      assert.deepEqual(table.foreignKeys, []); // test/integration/foreign-keys.test.ts has them
      assert.deepEqual(table.eventsToTrigger, []);
    });

    test("a declared event added by PUT is evaluated on the next writes", async () => {
      const url = "/v4/entity/acme/customTable/Tickets/record";
      const create = await t.request("POST", url, {
        properties: [
          { name: "ticketId", value: 7 },
          { name: "state", value: "OPEN" },
          { name: "tags", value: ["a", "b"] },
        ],
      });
      assert.equal(create.statusCode, 200, create.body);
      assert.deepEqual(create.json(), { businessKey: "7" });
      const padded = await t.request("GET", `${url}/007`);
      assert.equal(padded.statusCode, 200, padded.body);
      assert.equal((await t.request("GET", `${url}/seven`)).statusCode, 404);
      const put = await t.request("PUT", `${BASE}/Tickets`, {
        ...TICKETS,
        eventsToTrigger: [CLOSED],
      });
      assert.equal(put.statusCode, 200, put.body);
      assert.deepEqual(put.json().eventsToTrigger, [CLOSED]);
      await t.database.db.query("DELETE FROM change_events");
      assert.equal(
        (await t.request("PUT", `${url}/7`, { properties: [{ name: "state", value: "CLOSED" }] }))
          .statusCode,
        200,
      );
      assert.equal(
        (await t.request("PUT", `${url}/7`, { properties: [{ name: "tags", value: "c" }] }))
          .statusCode,
        200,
      );
      assert.equal((await t.request("DELETE", `${url}/7`)).statusCode, 204);
      const { rows } = await t.database.db.query<{
        event_type: string;
        declared_events: string[];
        fields: string[];
        record_key: string;
      }>("SELECT event_type, declared_events, fields, record_key FROM change_events ORDER BY id");
      assert.deepEqual(
        rows.map((r) => [r.event_type, r.declared_events, r.fields, r.record_key]),
        [
          ["UPDATE", ["ticket-closed"], ["state"], "7"],
          ["UPDATE", [], ["tags"], "7"],
          ["DELETE", ["ticket-closed"], ["ticketId", "state", "tags"], "7"],
        ],
      );
    });

    test("insert-only writes from code refuse an existing business key with 409 and no event", async () => {
      const table = await new TableCache(t.database.db).find(1, "CUSTOM_TABLE", "Tickets");
      assert.ok(table);
      const origin = { kind: "SYSTEM" } as const;
      const provided = parseRecordInput(table, [{ name: "ticketId", value: 8 }]);
      const first = await upsertCustomRecord(t.database, table, provided, origin, {
        allowUpdate: false,
      });
      assert.equal(first.outcome, "CREATED");
      await t.database.db.query("DELETE FROM change_events");
      await assert.rejects(
        upsertCustomRecord(t.database, table, { ...provided, state: "X" }, origin, {
          allowUpdate: false,
        }),
        (error: unknown) =>
          error instanceof HeraldError && error.code === "HERALD_UNIQUE_KEY_TAKEN",
      );
      const { rowCount } = await t.database.db.query("SELECT 1 FROM change_events");
      assert.equal(rowCount, 0);
    });

    test("ids are UUIDs; an id-shaped or numeric name is refused", async () => {
      const list = await t.request("GET", BASE);
      assert.match(list.json().customTables[0].id, /^[0-9a-f-]{36}$/);
      const numeric = await t.request("POST", BASE, { ...TICKETS, name: "123" });
      assert.equal(numeric.statusCode, 400);
    });
  });
}
