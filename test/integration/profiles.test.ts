import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProfileUpserts } from "../../src/capture/profile-upsert.js";
import { parseProfileInput } from "../../src/capture/profile-writer.js";
import { StaleTableDefinition } from "../../src/capture/write-retry.js";
import { findTable } from "../../src/storage/data-table-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const TABLE = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "age", type: "CUSTOM", valueType: "INTEGER" },
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] },
  ],
};

interface EventRow {
  event_type: string;
  record_key: string;
  keys: Record<string, unknown>;
  state: Record<string, unknown>;
  fields: string[];
  previous: Record<string, unknown>;
  extra: Record<string, unknown>;
  version: number;
  origin: Record<string, unknown>;
  source: string;
  source_id: string;
}

for (const { backend, skip } of await testBackends()) {
  describe(`profiles on ${backend}`, { skip }, () => {
    let t: TestApp;
    let tableId: string;
    const url = "/v4/entity/acme/table/Customers/profile";
    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const clearEvents = () => t.database.db.query("DELETE FROM change_events");

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", TABLE);
      assert.equal(created.statusCode, 201, created.body);
      tableId = created.json().id;
    });
    after(() => t?.close());

    test("create emits CREATE then UPDATED_SUBSCRIPTION and UPDATED_SEGMENT, in one write", async () => {
      await clearEvents();
      const res = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "Ann@Example.com" },
          { name: "age", value: 41 },
        ],
        subscriptions: [{ name: "newsletter", subscribe: true }],
        segmentations: [
          { belongs: true, segmentation: { category: "Active", name: "Active" } },
          { category: "ClientType", name: "Gold" },
        ],
      });
      assert.equal(res.statusCode, 200, res.body);
      const profileId = res.json().profileId as number;
      const rows = await events();
      assert.deepEqual(
        rows.map((r) => r.event_type),
        ["CREATE", "UPDATED_SUBSCRIPTION", "UPDATED_SEGMENT", "UPDATED_SEGMENT"],
      );
      const create = rows[0]!;
      assert.equal(create.source, "PROFILE_TABLE");
      assert.equal(create.source_id, tableId);
      assert.equal(create.record_key, String(profileId));
      assert.deepEqual(create.keys, { profileId, emailAddress: "ann@example.com" });
      assert.deepEqual(create.fields.sort(), ["age", "emailAddress"]);
      assert.equal(create.state.age, 41);
      assert.equal(create.state.profileId, profileId);
      assert.ok(typeof create.state.creationMoment === "string");
      assert.equal(create.version, 1);
      assert.equal(create.origin.kind, "API_KEY");
      assert.deepEqual(rows[1]!.extra, { subscriptionName: "newsletter", subscribe: true });
      assert.deepEqual(rows[3]!.extra, {
        segmentation: "ClientType",
        segment: "Gold",
        belongs: true,
      });

      const read = await t.request("GET", `${url}/${profileId}`);
      assert.equal(read.statusCode, 200);
      const body = read.json();
      assert.deepEqual(
        body.attributes.find((a: { name: string }) => a.name === "age"),
        { name: "age", value: 41 },
      );
      assert.deepEqual(body.subscriptions, [{ name: "newsletter", subscribe: true }]);
      const byKey = await t.request("GET", `${url}/emailAddress=ann@example.com`);
      assert.equal(byKey.statusCode, 200);
      assert.deepEqual(byKey.json(), body);
    });

    test("without allowUpdate a taken unique key is 409 and writes nothing", async () => {
      await clearEvents();
      const res = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "ann@example.com" }],
      });
      assert.equal(res.statusCode, 409);
      assert.equal(res.json().code, "HERALD_UNIQUE_KEY_TAKEN");
      assert.match(res.json().details[0].path, /emailAddress/);
      assert.equal((await events()).length, 0);
      const count = await t.database.db.query("SELECT 1 FROM records WHERE table_id = $1", [
        tableId,
      ]);
      assert.equal(count.rowCount, 1);
    });

    test("allowUpdate updates: UPDATE with changed fields and previous values; a no-op emits nothing", async () => {
      await clearEvents();
      const body = {
        attributes: [
          { name: "emailAddress", value: "ann@example.com" },
          { name: "age", value: 42 },
          { name: "firstName", value: "Ann" },
        ],
      };
      const res = await t.request("POST", `${url}?allowUpdate=true`, body);
      assert.equal(res.statusCode, 200, res.body);
      const rows = await events();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.event_type, "UPDATE");
      assert.deepEqual(rows[0]!.fields, ["age", "firstName"]);
      assert.deepEqual(rows[0]!.previous, { age: 41, firstName: null });
      assert.equal(rows[0]!.version, 2);
      const again = await t.request("POST", `${url}?allowUpdate=true`, body);
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().profileId, res.json().profileId);
      assert.equal((await events()).length, 1);
      const { rows: rec } = await t.database.db.query<{ version: number }>(
        "SELECT version FROM records WHERE record_id = $1",
        [res.json().profileId],
      );
      assert.equal(rec[0]!.version, 2);
    });

    test("moving between exclusive segments leaves the old one; subscription calls emit one event each", async () => {
      await clearEvents();
      const key = "emailAddress=ann@example.com";
      const put = await t.request("PUT", `${url}/${key}/segmentation/ClientType`, {
        name: "Silver",
      });
      assert.equal(put.statusCode, 200, put.body);
      const unsub = await t.request("DELETE", `${url}/${key}/subscription/newsletter`);
      assert.equal(unsub.statusCode, 204);
      const rows = await events();
      assert.deepEqual(
        rows.map((r) => [r.event_type, r.extra]),
        [
          ["UPDATED_SEGMENT", { segmentation: "ClientType", segment: "Gold", belongs: false }],
          ["UPDATED_SEGMENT", { segmentation: "ClientType", segment: "Silver", belongs: true }],
          ["UPDATED_SUBSCRIPTION", { subscriptionName: "newsletter", subscribe: false }],
        ],
      );
      const segs = await t.request("GET", `${url}/${key}/segmentation`);
      assert.deepEqual(segs.json().segmentations, [
        { belongs: true, segmentation: { category: "Active", name: "Active" } },
        { belongs: true, segmentation: { category: "ClientType", name: "Silver" } },
      ]);
      const unknown = await t.request("POST", `${url}/${key}/subscription/nope`);
      assert.equal(unknown.statusCode, 404);
      for (const method of ["PUT", "DELETE"]) {
        const noSegmentation = await t.request(
          method,
          `${url}/${key}/segmentation/Nope`,
          method === "PUT" ? { name: "x" } : undefined,
        );
        assert.equal(noSegmentation.statusCode, 404, noSegmentation.body);
        assert.equal(noSegmentation.json().code, "HERALD_SEGMENTATION_NOT_FOUND");
      }
    });

    test("PUT changing a unique value moves the key: new value taken, old value free, one UPDATE", async () => {
      const other = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "bob@example.com" }],
        subscriptions: [{ name: "newsletter", subscribe: false }],
      });
      assert.equal(other.statusCode, 200);
      await clearEvents();
      const bob = other.json().profileId as number;
      const clash = await t.request("PUT", `${url}/${bob}`, {
        attributes: [{ name: "emailAddress", value: "ann@example.com" }],
      });
      assert.equal(clash.statusCode, 409);
      assert.equal(clash.json().code, "HERALD_UNIQUE_KEY_TAKEN");
      const move = await t.request("PUT", `${url}/emailAddress=bob@example.com`, {
        attributes: [
          { name: "emailAddress", value: "robert@example.com" },
          { name: "customerId", value: "C-1" },
        ],
        subscriptions: [{ name: "newsletter", subscribe: true }],
      });
      assert.equal(move.statusCode, 200, move.body);
      const rows = await events();
      assert.deepEqual(
        rows.map((r) => r.event_type),
        ["UPDATE", "UPDATED_SUBSCRIPTION"],
      );
      assert.deepEqual(rows[0]!.keys, {
        profileId: bob,
        emailAddress: "robert@example.com",
        customerId: "C-1",
      });
      assert.deepEqual(rows[0]!.previous, { emailAddress: "bob@example.com", customerId: null });
      assert.equal(rows[0]!.version, 2);
      assert.equal(rows[1]!.version, 2);
      assert.equal((await t.request("GET", `${url}/emailAddress=bob@example.com`)).statusCode, 404);
      assert.equal(
        (await t.request("GET", `${url}/customerId=C-1`)).json().attributes[0].value,
        bob,
      );
      const reuse = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "bob@example.com" }],
      });
      assert.equal(reuse.statusCode, 200);
      const del = await t.request("DELETE", `${url}/${reuse.json().profileId}`);
      assert.equal(del.statusCode, 204);
    });

    test("search and delete; DELETE carries the state before", async () => {
      const search = await t.request("GET", `${url}?search=firstName=Ann&number=5`);
      assert.equal(search.statusCode, 200);
      assert.equal(search.json().profiles.length, 1);
      await clearEvents();
      const del = await t.request("DELETE", `${url}/emailAddress=ann@example.com`);
      assert.equal(del.statusCode, 204);
      const rows = await events();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.event_type, "DELETE");
      assert.equal(rows[0]!.state.firstName, "Ann");
      const gone = await t.request("GET", `${url}/emailAddress=ann@example.com`);
      assert.equal(gone.statusCode, 404);
      // The unique value is free again.
      const recreate = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "ann@example.com" }],
      });
      assert.equal(recreate.statusCode, 200);
    });

    // Through the API the request then reads the table again and answers 404
    // (definition-changes.test.ts).
    test("a write through a stale cached definition of a deleted table writes nothing, and says why", async () => {
      const table = await findTable(t.database.db, 1, "PROFILE_TABLE", tableId);
      assert.ok(table);
      const ghost = { ...table, id: "999999" };
      const write = parseProfileInput(ghost, {
        attributes: [{ name: "emailAddress", value: "g@h.ij" }],
      });
      await assert.rejects(
        new ProfileUpserts(t.database).upsert(ghost, write, {
          allowUpdate: false,
          origin: { kind: "SYSTEM" },
        }),
        StaleTableDefinition,
      );
    });

    test("concurrent allowUpdate upserts of one new key end as one create and updates, never a 500", async () => {
      await clearEvents();
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          t.request("POST", `${url}?allowUpdate=true`, {
            attributes: [
              { name: "emailAddress", value: "race@example.com" },
              { name: "age", value: i },
            ],
          }),
        ),
      );
      for (const r of results) assert.equal(r.statusCode, 200, r.body);
      assert.equal(new Set(results.map((r) => r.json().profileId)).size, 1);
      const rows = await events();
      assert.equal(rows.filter((r) => r.event_type === "CREATE").length, 1);
      const versions = rows.map((r) => r.version);
      assert.deepEqual(
        versions,
        [...versions].sort((a, b) => a - b),
      );
    });
  });
}
