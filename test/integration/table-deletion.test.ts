/**
 * Deleting a table (SPEC §3, docs/data-model.md "Deleting a table"), on both backends: the table is
 * gone from the API at once, the deletion job deletes its records in batches with one DELETE event
 * each (the event a one-by-one delete gives), survives a worker that dies mid-way, waits for the
 * subscriptions on the table to pass those events, then disables them (TABLE_DELETED) and removes
 * the table's row. Delivery through a real receiver is in test/e2e/table-deletion.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runTableDeletion } from "../../src/jobs/table-deletion.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import {
  claimDeletion,
  findDeletion,
  hasRunnableDeletion,
} from "../../src/storage/table-deletion-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import type { LoggedEvent } from "../helpers/table-deletion.js";
import {
  CUSTOM_TABLES,
  PROFILE_TABLES,
  SUBSCRIPTIONS,
  createTable,
  deletionWhen,
  done,
  eventsOf,
  leftovers,
  ordersTable,
  peopleTable,
  startWorker,
  subscribeTo,
  writeOrders,
  writePeople,
} from "../helpers/table-deletion.js";

const logger = createLogger("silent");

/** What a DELETE event says about its record, without what differs between two twin tables. */
function comparable(event: LoggedEvent) {
  const { profileId: _p, creationMoment: _c, updateMoment: _u, ...state } = event.state;
  const { profileId: _k, ...keys } = event.keys;
  return {
    type: event.event_type,
    keys,
    state,
    fields: event.fields,
    version: event.version,
    declared: event.declared_events,
  };
}

for (const { backend, skip } of await testBackends()) {
  describe(`table deletion on ${backend}`, { skip }, () => {
    let t: TestApp;
    let sequencer: Sequencer;
    before(async () => {
      t = await createTestApp(backend);
      sequencer = await startSequencer({
        db: t.database.db,
        logSignals: t.database.logSignals,
        logger,
        pollMs: 50,
      });
    });
    after(async () => {
      await sequencer?.stop();
      await t?.close();
    });

    test("right after the 204 the table is gone from the API, its name free; a referred-to table is refused", async () => {
      const db = t.database.db;
      const id = await createTable(t, CUSTOM_TABLES, ordersTable("Gone"));
      await writeOrders(t, "Gone", 3);
      const deleted = await t.request("DELETE", `${CUSTOM_TABLES}/Gone`);
      assert.equal(deleted.statusCode, 204, deleted.body);

      const records = "/v4/entity/acme/customTable/Gone/record";
      for (const [method, url, body] of [
        ["GET", `${CUSTOM_TABLES}/Gone`],
        ["GET", `${CUSTOM_TABLES}/${id}`],
        ["PUT", `${CUSTOM_TABLES}/${id}`, ordersTable("Gone")],
        ["DELETE", `${CUSTOM_TABLES}/${id}`],
        ["GET", `${records}/o-1`],
        ["GET", `${records}?searchField=status&searchValue=OPEN`],
        ["PUT", `${records}/o-1`, { properties: [{ name: "status", value: "X" }] }],
        ["DELETE", `${records}/o-1`],
        ["POST", records, { properties: [{ name: "orderId", value: "o-9" }] }],
      ] as const) {
        const res = await t.request(method, url, body);
        assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
        assert.equal((res.json() as { code: string }).code, "HERALD_TABLE_NOT_FOUND");
      }
      const list = (await t.request("GET", CUSTOM_TABLES)).json() as {
        customTables: { id: string }[];
      };
      assert.ok(!list.customTables.some((table) => table.id === id));
      const subscription = await t.request("POST", SUBSCRIPTIONS, {
        on: "CUSTOM_TABLE",
        onElementId: id,
        eventType: "DELETE",
        targetUrl: "http://127.0.0.1:9/hook",
      });
      assert.equal(subscription.statusCode, 404, subscription.body);
      // No worker runs here: the records are still there, waiting for the job.
      assert.equal((await leftovers(db, id)).records, 3);
      assert.equal((await findDeletion(db, id))?.status, "DELETING_RECORDS");

      // The name is free: a new table takes it, and its records are its own.
      const again = await createTable(t, CUSTOM_TABLES, ordersTable("Gone"));
      assert.notEqual(again, id);
      await writeOrders(t, "Gone", 1);
      assert.equal((await t.request("GET", `${records}/o-0`)).statusCode, 200);
      assert.equal((await leftovers(db, id)).records, 3);
      // The job deletes the old table's records, never those of the new one.
      const worker = await startWorker(t.database, `gone-${backend}`);
      try {
        assert.equal((await done(db, id)).recordsDeleted, 3);
      } finally {
        await worker.stop();
      }
      assert.deepEqual(await leftovers(db, id), { records: 0, keys: 0, tableRows: 0 });
      assert.deepEqual(await leftovers(db, again), { records: 1, keys: 1, tableRows: 1 });
      assert.equal((await t.request("GET", `${records}/o-0`)).statusCode, 200);

      // Refused while another table's foreign key refers to it: nothing is marked.
      const parent = await createTable(t, PROFILE_TABLES, peopleTable("Parents"));
      await createTable(t, CUSTOM_TABLES, {
        name: "Children",
        type: "LINKED_DATA",
        primaryKeyAttribute: "id",
        attributes: [
          { name: "id", valueType: "STRING" },
          { name: "parent", valueType: "LONG" },
        ],
        foreignKeys: [
          { attribute: "parent", referencedTable: { kind: "PROFILE_TABLE", id: "Parents" } },
        ],
      });
      const refused = await t.request("DELETE", `${PROFILE_TABLES}/Parents`);
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(await findDeletion(db, parent), undefined);
      assert.equal((await t.request("GET", `${PROFILE_TABLES}/Parents`)).statusCode, 200);
    });

    test("the job deletes every record in batches, each with the DELETE event a one-by-one delete gives; nothing is left", async () => {
      const db = t.database.db;
      const COUNT = 11;
      // Twins: the same records in two tables; A's are deleted one by one, B as a table.
      const ordersA = await createTable(t, CUSTOM_TABLES, ordersTable("OrdersA"));
      const ordersB = await createTable(t, CUSTOM_TABLES, ordersTable("OrdersB"));
      const peopleA = await createTable(t, PROFILE_TABLES, peopleTable("PeopleA"));
      const peopleB = await createTable(t, PROFILE_TABLES, peopleTable("PeopleB"));
      const orderKeys = await writeOrders(t, "OrdersA", COUNT);
      await writeOrders(t, "OrdersB", COUNT);
      const personIdsA = await writePeople(t, "PeopleA", COUNT);
      const personIdsB = await writePeople(t, "PeopleB", COUNT);
      for (const key of orderKeys)
        assert.equal(
          (await t.request("DELETE", `/v4/entity/acme/customTable/OrdersA/record/${key}`))
            .statusCode,
          204,
        );
      for (const id of personIdsA)
        assert.equal(
          (await t.request("DELETE", `/v4/entity/acme/table/PeopleA/profile/${id}`)).statusCode,
          204,
        );
      const before = { orders: await leftovers(db, ordersB), people: await leftovers(db, peopleB) };
      assert.deepEqual(before.orders, { records: COUNT, keys: COUNT, tableRows: 1 });
      assert.deepEqual(before.people, { records: COUNT, keys: COUNT, tableRows: 1 });

      assert.equal((await t.request("DELETE", `${CUSTOM_TABLES}/OrdersB`)).statusCode, 204);
      assert.equal((await t.request("DELETE", `${PROFILE_TABLES}/${peopleB}`)).statusCode, 204);
      const worker = await startWorker(t.database, `batches-${backend}`, { batchRows: 4 });
      try {
        for (const tableId of [ordersB, peopleB]) {
          const finished = await done(db, tableId);
          assert.equal(finished.recordsDeleted, COUNT);
          assert.equal(finished.subscriptionsDisabled, 0);
          assert.deepEqual(await leftovers(db, tableId), { records: 0, keys: 0, tableRows: 0 });
        }
      } finally {
        await worker.stop();
      }

      for (const [a, b, kind] of [
        [ordersA, ordersB, "orders"],
        [peopleA, peopleB, "people"],
      ] as const) {
        const one = (await eventsOf(db, a)).filter((e) => e.event_type === "DELETE");
        const all = await eventsOf(db, b);
        const deletes = all.filter((e) => e.event_type === "DELETE");
        assert.equal(deletes.length, COUNT, `${kind}: one DELETE event per record`);
        // The log holds the writes' events, then exactly the DELETE events, nothing after them.
        assert.deepEqual(
          all.slice(-COUNT).map((e) => e.event_type),
          Array(COUNT).fill("DELETE"),
        );
        assert.deepEqual(deletes.map(comparable), one.map(comparable), kind);
        for (const event of deletes)
          assert.deepEqual(event.origin, {
            kind: "TABLE_DELETION",
            type: "TABLE_DELETION",
            tableId: b,
            tableName: kind === "orders" ? "OrdersB" : "PeopleB",
            apiKeyId: event.origin.apiKeyId,
            apiKeyName: "admin",
          });
      }
      // The declared event with a DELETE rule fired for the OPEN orders only (0, 3, 6, 9).
      const declared = (await eventsOf(db, ordersB))
        .filter((e) => e.event_type === "DELETE" && e.declared_events.length > 0)
        .map((e) => e.record_key);
      assert.deepEqual(declared, ["o-0", "o-3", "o-6", "o-9"]);
      const profileKeys = (await eventsOf(db, peopleB))
        .filter((e) => e.event_type === "DELETE")
        .map((e) => e.keys);
      assert.deepEqual(
        profileKeys,
        personIdsB.map((id, i) => ({ profileId: id, emailAddress: `p${i}@example.com` })),
      );
    });

    test("a deletion whose worker died mid-way is finished by another worker: no event lost or doubled", async () => {
      const db = t.database.db;
      const COUNT = 10;
      const id = await createTable(t, CUSTOM_TABLES, ordersTable("Crashy"));
      await writeOrders(t, "Crashy", COUNT);
      assert.equal((await t.request("DELETE", `${CUSTOM_TABLES}/Crashy`)).statusCode, 204);

      // A worker claims it, deletes one batch, and dies (no release: its lease stays until it expires).
      const claimed = await claimDeletion(db, "dead-worker", 400);
      assert.equal(claimed?.tableId, id);
      let batches = 0;
      const dead = {
        db,
        logSignals: t.database.logSignals,
        logger,
        owner: "dead-worker",
        leaseMs: 400,
        batchRows: 3,
        spacing: { firstMs: 20, maxMs: 100 },
        stopping: () => batches++ >= 1,
      };
      assert.deepEqual(await runTableDeletion(dead, claimed!), { kind: "stopped" });
      assert.equal((await findDeletion(db, id))?.recordsDeleted, 3);
      assert.equal((await leftovers(db, id)).records, COUNT - 3);
      // While its lease lives nobody else takes the job.
      assert.equal(await hasRunnableDeletion(db), false);
      assert.equal(await claimDeletion(db, "eager-worker", 5_000), undefined);

      const worker = await startWorker(t.database, `resume-${backend}`, { batchRows: 3 });
      try {
        const finished = await done(db, id);
        assert.equal(finished.recordsDeleted, COUNT);
        // Claimed by the dead worker, then by this one (and again after waiting for the sequencer).
        assert.ok(finished.runs >= 2, `runs: ${finished.runs}`);
      } finally {
        await worker.stop();
      }
      // The dead worker wakes up: it holds nothing any more, and writes nothing.
      batches = -100;
      assert.deepEqual(await runTableDeletion(dead, claimed!), { kind: "lost" });
      const deletes = (await eventsOf(db, id)).filter((e) => e.event_type === "DELETE");
      assert.deepEqual(
        deletes.map((e) => e.record_key),
        Array.from({ length: COUNT }, (_, i) => `o-${i}`),
      );
      assert.deepEqual(await leftovers(db, id), { records: 0, keys: 0, tableRows: 0 });
    });

    test("the job waits for each active subscription on the table to pass the DELETE events, then disables them all (TABLE_DELETED)", async () => {
      const db = t.database.db;
      const id = await createTable(t, CUSTOM_TABLES, ordersTable("Watched"));
      const other = await createTable(t, CUSTOM_TABLES, ordersTable("Unwatched"));
      await writeOrders(t, "Watched", 4);
      const live = await subscribeTo(t, { on: "CUSTOM_TABLE", onElementId: id });
      const paused = await subscribeTo(t, {
        on: "CUSTOM_TABLE",
        onElementId: id,
        eventType: "CREATE",
        isActive: false,
      });
      const elsewhere = await subscribeTo(t, { on: "CUSTOM_TABLE", onElementId: other });
      // No delivery engine runs here: the watermarks move only when this test moves them.
      assert.equal((await t.request("DELETE", `${CUSTOM_TABLES}/${id}`)).statusCode, 204);
      const worker = await startWorker(t.database, `waits-${backend}`, { batchRows: 3 });
      try {
        const waiting = await deletionWhen(
          db,
          id,
          (d) =>
            d.status === "AWAITING_DELIVERY" && d.lastPosition !== null && d.deliveryChecks > 2,
        );
        const deletes = (await eventsOf(db, id)).filter((e) => e.event_type === "DELETE");
        assert.equal(waiting.lastPosition, deletes.at(-1)!.position);
        assert.equal(waiting.recordsDeleted, 4);
        const read = async (sub: number) =>
          (await t.request("GET", `${SUBSCRIPTIONS}/${sub}`)).json() as {
            isActive: boolean;
            status: { state: string; reason: string | null };
          };
        assert.equal((await read(live)).isActive, true, "not disabled before it passed the events");
        assert.equal((await leftovers(db, id)).tableRows, 1);

        // One position short is not enough; the last DELETE event's position is.
        const move = (watermark: number) =>
          db.query("UPDATE webhook_subscriptions SET watermark = $2 WHERE id = $1", [
            live,
            watermark,
          ]);
        await move(waiting.lastPosition! - 1);
        await deletionWhen(db, id, (d) => d.deliveryChecks > waiting.deliveryChecks + 1);
        assert.equal((await read(live)).isActive, true);
        await move(waiting.lastPosition!);
        const finished = await done(db, id);
        assert.equal(finished.subscriptionsDisabled, 2);
        for (const sub of [live, paused]) {
          const s = await read(sub);
          assert.equal(s.isActive, false);
          assert.deepEqual([s.status.state, s.status.reason], ["DISABLED", "TABLE_DELETED"]);
        }
        const untouched = await read(elsewhere);
        assert.deepEqual([untouched.isActive, untouched.status.state], [true, "ACTIVE"]);

        // Switching it on again, on the table that is gone, is refused and changes nothing.
        const body = {
          on: "CUSTOM_TABLE",
          onElementId: id,
          eventType: "DELETE",
          targetUrl: "http://127.0.0.1:9/hook",
          isActive: true,
        };
        const refused = await t.request("PUT", `${SUBSCRIPTIONS}/${live}`, body);
        assert.equal(refused.statusCode, 404, refused.body);
        assert.equal((refused.json() as { code: string }).code, "HERALD_TABLE_NOT_FOUND");
        assert.match(refused.body, /onElementId/);
        assert.deepEqual((await read(live)).status.reason, "TABLE_DELETED");
        assert.equal((await read(live)).isActive, false);
        // Pointed at a table that exists, it is an ordinary subscription again.
        const moved = await t.request("PUT", `${SUBSCRIPTIONS}/${live}`, {
          ...body,
          onElementId: other,
        });
        assert.equal(moved.statusCode, 200, moved.body);
        const revived = await read(live);
        assert.deepEqual(
          [revived.isActive, revived.status.state, revived.status.reason],
          [true, "ACTIVE", null],
        );
      } finally {
        await worker.stop();
      }
    });

    test("an empty table goes at once with no event; a table referring to another is deleted while that one's records change", async () => {
      const db = t.database.db;
      const empty = await createTable(t, PROFILE_TABLES, peopleTable("Empty"));
      const sub = await subscribeTo(t, { on: "PROFILE_TABLE", onElementId: empty });
      await createTable(t, PROFILE_TABLES, peopleTable("Buyers"));
      const [buyer] = await writePeople(t, "Buyers", 1);
      const baskets = await createTable(t, CUSTOM_TABLES, {
        name: "Baskets",
        type: "LINKED_DATA",
        primaryKeyAttribute: "id",
        attributes: [
          { name: "id", valueType: "STRING" },
          { name: "buyer", valueType: "LONG" },
        ],
        foreignKeys: [
          {
            attribute: "buyer",
            referencedTable: { kind: "PROFILE_TABLE", id: "Buyers" },
            onDelete: "RESTRICT",
          },
        ],
      });
      const basket = await t.request("POST", "/v4/entity/acme/customTable/Baskets/record", {
        properties: [
          { name: "id", value: "b-1" },
          { name: "buyer", value: buyer },
        ],
      });
      assert.equal(basket.statusCode, 200, basket.body);
      assert.equal((await t.request("DELETE", `${PROFILE_TABLES}/Empty`)).statusCode, 204);
      assert.equal((await t.request("DELETE", `${CUSTOM_TABLES}/Baskets`)).statusCode, 204);
      // Baskets is being deleted: its RESTRICT no longer holds the buyer back.
      const buyerGone = await t.request("DELETE", `/v4/entity/acme/table/Buyers/profile/${buyer}`);
      assert.equal(buyerGone.statusCode, 204, buyerGone.body);

      const worker = await startWorker(t.database, `empty-${backend}`);
      try {
        const finished = await done(db, empty);
        assert.deepEqual([finished.recordsDeleted, finished.lastPosition], [0, null]);
        assert.equal(finished.subscriptionsDisabled, 1);
        assert.deepEqual(await eventsOf(db, empty), []);
        const s = (await t.request("GET", `${SUBSCRIPTIONS}/${sub}`)).json() as {
          status: { reason: string };
        };
        assert.equal(s.status.reason, "TABLE_DELETED");
        assert.equal((await done(db, baskets)).recordsDeleted, 1);
        assert.deepEqual(await leftovers(db, baskets), { records: 0, keys: 0, tableRows: 0 });
      } finally {
        await worker.stop();
      }
    });
  });
}
