/**
 * Deleting a table as a subscriber sees it (SPEC §3, issue #14 item 6), on both backends: the API
 * in-process with the real sequencer, delivery worker and table deletion worker, and real loopback
 * receivers. A custom table and a profile table, each with more records than a deletion batch, are
 * deleted through the API; every subscription on them receives one DELETE event per record (ONE_BY_ONE
 * and BULK), signed, with the record's keys; each is then disabled with reason TABLE_DELETED, and
 * nothing of the tables is left but their events in the log.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { TableDeletionWorker } from "../../src/jobs/table-deletion-worker.js";
import type { TestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import {
  CUSTOM_TABLES,
  PROFILE_TABLES,
  SUBSCRIPTIONS,
  createTable,
  done,
  eventsOf,
  leftovers,
  ordersTable,
  peopleTable,
  startWorker,
  writeOrders,
  writePeople,
} from "../helpers/table-deletion.js";
import type { ApiWithEngine } from "./api-with-engine.js";
import { startApiWithEngine } from "./api-with-engine.js";
import { dataObjects } from "./delivery-fixtures.js";

/** Records per table: more than two deletion batches of BATCH. */
const ORDERS = 23;
const PEOPLE = 12;
const BATCH = 5;

interface Subscriber {
  id: number;
  secret: string;
  receiver: WebhookReceiver;
}

for (const { backend, skip } of await testBackends()) {
  describe(`table deletion delivered (${backend})`, { skip }, () => {
    let engine: ApiWithEngine;
    let t: TestApp;
    let deletions: TableDeletionWorker;
    const receivers: WebhookReceiver[] = [];

    before(async () => {
      engine = await startApiWithEngine(backend, `table-deletion-${backend}`);
      t = engine.app;
      deletions = await startWorker(t.database, `deletions-${backend}`, { batchRows: BATCH });
    });
    after(async () => {
      await deletions?.stop();
      for (const r of receivers) await r.close();
      await engine?.close();
    });

    async function subscriber(settings: Record<string, unknown>): Promise<Subscriber> {
      const receiver = await startWebhookReceiver();
      receivers.push(receiver);
      const res = await t.request("POST", SUBSCRIPTIONS, {
        eventType: "DELETE",
        targetUrl: receiver.url,
        ...settings,
      });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json() as { id: number; secret: string };
      return { id: body.id, secret: body.secret, receiver };
    }

    /** The data objects a subscriber received, each checked against the push's signature. */
    function received(s: Subscriber): Record<string, unknown>[] {
      return s.receiver.requests.flatMap((q) => {
        new Webhook(s.secret).verify(q.body, q.headers as Record<string, string>);
        return dataObjects(q.json);
      });
    }

    test("every record's DELETE event reaches ONE_BY_ONE and BULK subscribers; then they are disabled (TABLE_DELETED) and nothing is left", async () => {
      const db = t.database.db;
      const orders = await createTable(t, CUSTOM_TABLES, ordersTable("Orders"));
      const people = await createTable(t, PROFILE_TABLES, peopleTable("People"));
      const orderKeys = await writeOrders(t, "Orders", ORDERS);
      const profileIds = await writePeople(t, "People", PEOPLE);
      // Subscribed after the writes: what they receive is the deletion's.
      const bulk = { pushMode: "BULK", maxBlockSize: 10, lingerMs: 100, maxWaitMs: 500 };
      const ordersOne = await subscriber({ on: "CUSTOM_TABLE", onElementId: orders });
      const ordersBulk = await subscriber({ on: "CUSTOM_TABLE", onElementId: orders, ...bulk });
      const ordersCreate = await subscriber({
        on: "CUSTOM_TABLE",
        onElementId: orders,
        eventType: "CREATE",
      });
      const peopleOne = await subscriber({ on: "PROFILE_TABLE", onElementId: people });
      const peopleBulk = await subscriber({ on: "PROFILE_TABLE", onElementId: people, ...bulk });

      assert.equal((await t.request("DELETE", `${CUSTOM_TABLES}/Orders`)).statusCode, 204);
      assert.equal((await t.request("DELETE", `${PROFILE_TABLES}/People`)).statusCode, 204);
      assert.equal((await t.request("GET", `${CUSTOM_TABLES}/Orders`)).statusCode, 404);
      assert.equal(
        (await t.request("GET", `/v4/entity/acme/table/People/profile/${profileIds[0]}`))
          .statusCode,
        404,
      );

      const finished = [await done(db, orders, 60_000), await done(db, people, 60_000)];
      assert.deepEqual(
        finished.map((d) => [d.recordsDeleted, d.subscriptionsDisabled]),
        [
          [ORDERS, 3],
          [PEOPLE, 2],
        ],
      );

      // Disabled only once delivered: at this point every DELETE event is already at its receiver.
      const expectedOrders = orderKeys.map((key, i) => ({ orderId: key, reference: `REF-${i}` }));
      for (const s of [ordersOne, ordersBulk]) {
        const data = received(s);
        assert.equal(data.length, ORDERS);
        assert.equal(new Set(data.map((d) => (d._event as { id: string }).id)).size, ORDERS);
        assert.ok(data.every((d) => (d._event as { type: string }).type === "DELETE"));
        assert.deepEqual(
          data
            .map((d) => ({ orderId: d.orderId, reference: d.reference }))
            .sort(
              (a, b) => Number(String(a.orderId).slice(2)) - Number(String(b.orderId).slice(2)),
            ),
          expectedOrders,
        );
        const origin = (data[0]!._event as { origin: { type: string; tableName: string } }).origin;
        assert.deepEqual([origin.type, origin.tableName], ["TABLE_DELETION", "Orders"]);
      }
      assert.equal(ordersOne.receiver.requests.length, ORDERS, "ONE_BY_ONE: one push per record");
      assert.ok(
        ordersBulk.receiver.requests.length < ORDERS,
        `BULK: blocks of several events (${ordersBulk.receiver.requests.length} pushes)`,
      );
      assert.equal(ordersCreate.receiver.requests.length, 0);
      for (const s of [peopleOne, peopleBulk]) {
        const data = received(s);
        assert.equal(data.length, PEOPLE);
        assert.deepEqual(
          data
            .map((d) => ({ profileId: d.profileId, emailAddress: d.emailAddress }))
            .sort((a, b) => Number(a.profileId) - Number(b.profileId)),
          profileIds.map((id, i) => ({ profileId: String(id), emailAddress: `p${i}@example.com` })),
        );
      }
      assert.ok(peopleBulk.receiver.requests.length < PEOPLE);

      for (const s of [ordersOne, ordersBulk, ordersCreate, peopleOne, peopleBulk]) {
        const res = await t.request("GET", `${SUBSCRIPTIONS}/${s.id}`);
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json() as { isActive: boolean; status: { state: string; reason: string } };
        assert.deepEqual(
          [body.isActive, body.status.state, body.status.reason],
          [false, "DISABLED", "TABLE_DELETED"],
          `subscription ${s.id}`,
        );
      }

      // Nothing is left but the log: each record's CREATE (and profile subscription) events from
      // the writes, then exactly one DELETE event per record.
      for (const [tableId, count] of [
        [orders, ORDERS],
        [people, PEOPLE],
      ] as const) {
        assert.deepEqual(await leftovers(db, tableId), { records: 0, keys: 0, tableRows: 0 });
        const events = await eventsOf(db, tableId);
        const deletes = events.filter((e) => e.event_type === "DELETE");
        assert.equal(deletes.length, count);
        assert.equal(new Set(deletes.map((e) => e.record_key)).size, count);
        assert.deepEqual(events.slice(-count), deletes, "the DELETE events come last");
        assert.ok(deletes.every((e) => e.origin.type === "TABLE_DELETION" && e.position !== null));
        assert.equal(events.filter((e) => e.event_type === "CREATE").length, count);
        assert.deepEqual(
          [...new Set(events.map((e) => e.event_type))].sort(),
          tableId === orders ? ["CREATE", "DELETE"] : ["CREATE", "DELETE", "UPDATED_SUBSCRIPTION"],
        );
      }
    });
  });
}
