import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  createRecordWithEvents,
  updateRecordWithEvents,
  writeRecordsWithEvents,
} from "../../src/storage/record-event-writes.js";
import { findRecordById } from "../../src/storage/record-repository.js";
import { SQLSTATE, sqlState } from "../../src/storage/sql-errors.js";
import type { NewChangeEvent } from "../../src/domain/change-event.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const TABLE = {
  name: "People",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
  ],
};

interface EventRow {
  id: number;
  event_type: string;
  record_key: string;
  keys: Record<string, unknown>;
  state: Record<string, unknown>;
  version: number;
}

for (const { backend, skip } of await testBackends()) {
  describe(`single-statement capture writes on ${backend}`, { skip }, () => {
    let t: TestApp;
    let tableId: string;
    const url = "/v4/entity/acme/table/People/profile";
    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const count = async (table: "records" | "change_events" | "record_keys") =>
      (await t.database.db.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${table}`))
        .rows[0]!.n;
    /** A CREATE event draft of this table (the statements fill in the record's values). */
    const createEvent = (): NewChangeEvent => ({
      entityId: 1,
      source: "PROFILE_TABLE",
      sourceId: tableId,
      eventType: "CREATE",
      recordKey: "0",
      keys: {},
      state: {},
      fields: [],
      previous: {},
      extra: {},
      version: 1,
      declaredEvents: [],
      origin: { kind: "SYSTEM" },
    });
    const attribute = (body: { attributes: { name: string; value: unknown }[] }, name: string) =>
      body.attributes.find((a) => a.name === name)?.value;

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", TABLE);
      assert.equal(created.statusCode, 201, created.body);
      tableId = String(created.json().id);
    });
    after(() => t?.close());

    test("events built in SQL carry the row's profileId, times and version exactly as a read shows them", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const created = await t.request("POST", `${url}?allowUpdate=true`, {
        attributes: [{ name: "emailAddress", value: "time@example.com" }],
      });
      assert.equal(created.statusCode, 200, created.body);
      const profileId = created.json().profileId as number;
      const updated = await t.request("POST", `${url}?allowUpdate=true`, {
        attributes: [
          { name: "emailAddress", value: "time@example.com" },
          { name: "firstName", value: "Tim" },
        ],
      });
      assert.equal(updated.statusCode, 200, updated.body);
      const read = (await t.request("GET", `${url}/${profileId}`)).json();
      const [create, update] = await events();
      assert.equal(create!.event_type, "CREATE");
      assert.equal(create!.record_key, String(profileId));
      assert.deepEqual(create!.keys, { profileId, emailAddress: "time@example.com" });
      assert.equal(create!.state.profileId, profileId);
      assert.equal(create!.state.creationMoment, attribute(read, "creationMoment"));
      assert.equal(create!.state.updateMoment, create!.state.creationMoment);
      assert.equal(create!.version, 1);
      assert.equal(update!.event_type, "UPDATE");
      assert.equal(update!.version, 2);
      assert.equal(update!.state.creationMoment, attribute(read, "creationMoment"));
      assert.equal(update!.state.updateMoment, attribute(read, "updateMoment"));
      assert.equal(update!.state.firstName, "Tim");
    });

    test("a statement that fails on a taken key leaves no record, key row or event", async () => {
      const first = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "taken@example.com" },
          { name: "customerId", value: "C-1" },
        ],
      });
      assert.equal(first.statusCode, 200, first.body);
      const before = [
        await count("records"),
        await count("record_keys"),
        await count("change_events"),
      ];
      const event = createEvent();
      // A fresh email but a taken customerId: the record row and the event go in first, then the
      // key row fails, and the whole statement with it.
      await assert.rejects(
        createRecordWithEvents(
          t.database.db,
          {
            record: {
              tableId,
              businessKey: null,
              attributes: { emailAddress: "fresh@example.com", customerId: "C-1" },
              subscriptions: {},
              segments: {},
              keys: [
                { attribute: "emailAddress", value: "fresh@example.com" },
                { attribute: "customerId", value: "C-1" },
              ],
            },
            lookupKeys: [],
            insert: true,
            events: [event],
            rowValues: "PROFILE",
            tableVersion: 1,
          },
          t.database.logSignals,
        ),
        (error) => sqlState(error) === SQLSTATE.uniqueViolation,
      );
      const profileId = first.json().profileId as number;
      const record = (await findRecordById(t.database.db, tableId, profileId))!;
      // The same for an update that would move a unique value onto a taken one.
      const second = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "second@example.com" }],
      });
      assert.equal(second.statusCode, 200, second.body);
      const secondId = second.json().profileId as number;
      const secondRecord = (await findRecordById(t.database.db, tableId, secondId))!;
      const afterSecond = [
        await count("records"),
        await count("record_keys"),
        await count("change_events"),
      ];
      await assert.rejects(
        updateRecordWithEvents(
          t.database.db,
          {
            update: {
              recordId: secondId,
              tableId,
              attributes: { ...secondRecord.attributes, customerId: "C-1" },
              subscriptions: {},
              segments: {},
              dropKeys: ["customerId"],
              addKeys: [{ attribute: "customerId", value: "C-1" }],
            },
            expectedVersion: secondRecord.version,
            events: [{ ...event, eventType: "UPDATE" }],
            rowValues: "PROFILE",
            tableVersion: 1,
          },
          t.database.logSignals,
        ),
        (error) => sqlState(error) === SQLSTATE.uniqueViolation,
      );
      assert.deepEqual(
        [await count("records"), await count("record_keys"), await count("change_events")],
        afterSecond,
      );
      assert.deepEqual(afterSecond, [before[0]! + 1, before[1]! + 1, before[2]! + 1]);
      assert.equal((await findRecordById(t.database.db, tableId, secondId))!.version, 1);
      assert.equal(
        (await findRecordById(t.database.db, tableId, profileId))!.version,
        record.version,
      );
      // Through the API a create with a taken value fails its statement, then the transactional
      // path names the value: 409, and nothing is written.
      const res = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "third@example.com" },
          { name: "customerId", value: "C-1" },
        ],
      });
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(res.json().code, "HERALD_UNIQUE_KEY_TAKEN");
      assert.deepEqual(
        [await count("records"), await count("record_keys"), await count("change_events")],
        afterSecond,
      );
    });

    test("an update at a stale version writes nothing and says so", async () => {
      const res = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "stale@example.com" }],
      });
      const profileId = res.json().profileId as number;
      const record = (await findRecordById(t.database.db, tableId, profileId))!;
      const eventsBefore = await count("change_events");
      const written = await updateRecordWithEvents(
        t.database.db,
        {
          update: {
            recordId: profileId,
            tableId,
            attributes: { ...record.attributes, firstName: "Late" },
            subscriptions: {},
            segments: {},
            dropKeys: [],
            addKeys: [],
          },
          expectedVersion: record.version + 1,
          events: [],
          rowValues: "PROFILE",
          tableVersion: 1,
        },
        t.database.logSignals,
      );
      assert.equal(written, undefined);
      assert.equal(await count("change_events"), eventsBefore);
      assert.equal((await findRecordById(t.database.db, tableId, profileId))!.version, 1);
    });

    test("each statement writes nothing when its table is no longer at the version given", async () => {
      const res = await t.request("POST", url, {
        attributes: [{ name: "emailAddress", value: "gate@example.com" }],
      });
      const profileId = res.json().profileId as number;
      const record = (await findRecordById(t.database.db, tableId, profileId))!;
      const before = [
        await count("records"),
        await count("record_keys"),
        await count("change_events"),
      ];
      const event = createEvent();
      const newRecord = {
        tableId,
        attributes: { emailAddress: "gated@example.com" },
        subscriptions: {},
        segments: {},
        keys: [{ attribute: "emailAddress", value: "gated@example.com" }],
      };
      const update = {
        recordId: profileId,
        tableId,
        attributes: { ...record.attributes, firstName: "Gated" },
        subscriptions: {},
        segments: {},
        dropKeys: [],
        addKeys: [],
      };
      // The table is at version 1; these were checked against a version 2 that is not its own.
      const created = await createRecordWithEvents(
        t.database.db,
        {
          record: { ...newRecord, businessKey: null },
          lookupKeys: [],
          insert: true,
          events: [event],
          rowValues: "PROFILE",
          tableVersion: 2,
        },
        t.database.logSignals,
      );
      assert.deepEqual(created, { kind: "none" });
      const updated = await updateRecordWithEvents(
        t.database.db,
        {
          update,
          expectedVersion: record.version,
          events: [{ ...event, eventType: "UPDATE" }],
          rowValues: "PROFILE",
          tableVersion: 2,
        },
        t.database.logSignals,
      );
      assert.equal(updated, undefined);
      const batch = await writeRecordsWithEvents(
        t.database.db,
        [{ record: newRecord, events: [event], tableVersion: 2 }],
        [{ update, expectedVersion: record.version, events: [], tableVersion: 1 }],
        t.database.logSignals,
      );
      assert.equal(batch.current, false);
      assert.deepEqual(
        [await count("records"), await count("record_keys"), await count("change_events")],
        before,
      );
      assert.equal((await findRecordById(t.database.db, tableId, profileId))!.version, 1);
    });

    test("racing creates and updates of one record: versions 1..n in event id order, last state stored", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const emails = ["race-a@example.com", "race-b@example.com"];
      const writers = 8;
      const rounds = 4;
      const results = await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          const statuses: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const res = await t.request("POST", `${url}?allowUpdate=true`, {
              attributes: [
                { name: "emailAddress", value: emails[(w + r) % emails.length] },
                { name: "firstName", value: `w${w}r${r}` },
              ],
            });
            statuses.push(res.statusCode);
          }
          return statuses;
        }),
      );
      assert.deepEqual(results.flat(), Array(writers * rounds).fill(200));
      const rows = await events();
      const byRecord = new Map<string, EventRow[]>();
      for (const row of rows)
        byRecord.set(row.record_key, [...(byRecord.get(row.record_key) ?? []), row]);
      assert.equal(byRecord.size, emails.length);
      // Every write changes firstName, so each is exactly one event and one version.
      assert.equal(rows.length, writers * rounds);
      for (const [recordKey, recordEvents] of byRecord) {
        assert.deepEqual(
          recordEvents.map((e) => e.version),
          recordEvents.map((_, i) => i + 1),
          `record ${recordKey}: versions in id order`,
        );
        assert.equal(recordEvents[0]!.event_type, "CREATE");
        assert.ok(recordEvents.slice(1).every((e) => e.event_type === "UPDATE"));
        const stored = (await findRecordById(t.database.db, tableId, Number(recordKey)))!;
        assert.equal(stored.version, recordEvents.length);
        assert.equal(stored.attributes.firstName, recordEvents.at(-1)!.state.firstName);
      }
    });

    test("custom records: a create is one statement with the business key as record key; racing upserts of one key keep version order", async () => {
      const table = await t.request("POST", "/v5/entities/acme/custom-tables", {
        name: "Tickets",
        type: "INTERACTIONS",
        primaryKeyAttribute: "ticketId",
        attributes: [
          { name: "ticketId", valueType: "STRING", mandatory: true, unique: true },
          { name: "note", valueType: "STRING" },
        ],
      });
      assert.equal(table.statusCode, 201, table.body);
      await t.database.db.query("DELETE FROM change_events");
      const recordUrl = "/v4/entity/acme/customTable/Tickets/record";
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          t.request("POST", recordUrl, {
            properties: [
              { name: "ticketId", value: "T-1" },
              { name: "note", value: `n${i}` },
            ],
          }),
        ),
      );
      for (const r of results) assert.equal(r.statusCode, 200, r.body);
      const rows = await events();
      assert.equal(rows[0]!.event_type, "CREATE");
      assert.equal(rows.filter((r) => r.event_type === "CREATE").length, 1);
      assert.ok(rows.every((r) => r.record_key === "T-1"));
      assert.deepEqual(rows[0]!.keys, { ticketId: "T-1" });
      assert.deepEqual(
        rows.map((r) => r.version),
        rows.map((_, i) => i + 1),
      );
      const read = await t.request("GET", `${recordUrl}/T-1`);
      assert.equal(read.statusCode, 200, read.body);
      assert.ok(read.body.includes(String(rows.at(-1)!.state.note)));
    });
  });
}
