/**
 * Every capture write that commits change events wakes a sequencer of its own process at once
 * (LogSignals `inboxCommitted`), instead of leaving it to the writers' throttled NOTIFY and the busy poll; a
 * write that fails committed nothing and wakes nobody.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const PEOPLE = {
  name: "People",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
  ],
};
const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING", mandatory: true, unique: true },
    { name: "status", valueType: "STRING" },
  ],
};

for (const { backend, skip } of await testBackends()) {
  describe(`capture writes wake a local sequencer on ${backend}`, { skip }, () => {
    let t: TestApp;
    let wakeUps = 0;
    let stopListening: () => void;
    const profiles = "/v4/entity/acme/table/People/profile";
    const records = "/v4/entity/acme/customTable/Orders/record";

    before(async () => {
      t = await createTestApp(backend);
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/profile-tables", PEOPLE)).statusCode,
        201,
      );
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/custom-tables", ORDERS)).statusCode,
        201,
      );
      stopListening = t.database.logSignals.onInboxCommitted(() => wakeUps++);
    });
    after(async () => {
      stopListening?.();
      await t?.close();
    });

    /** The wake-ups the request caused, and its status. */
    async function wakeUpsOf(method: string, url: string, body?: unknown) {
      const before = wakeUps;
      const response = await t.request(method as "POST", url, body);
      return { status: response.statusCode, wakeUps: wakeUps - before };
    }

    test("profile upsert, update and delete each wake it once they commit", async () => {
      const email = { name: "emailAddress", value: "ann@example.com" };
      assert.deepEqual(await wakeUpsOf("POST", profiles, { attributes: [email] }), {
        status: 200,
        wakeUps: 1,
      });
      const updated = await wakeUpsOf("PUT", `${profiles}/emailAddress=ann@example.com`, {
        attributes: [{ name: "firstName", value: "Ann" }],
      });
      assert.deepEqual(updated, { status: 200, wakeUps: 1 });
      const deleted = await wakeUpsOf("DELETE", `${profiles}/emailAddress=ann@example.com`);
      assert.deepEqual(deleted, { status: 204, wakeUps: 1 });
    });

    test("custom record upsert, update and delete each wake it once they commit", async () => {
      const properties = [
        { name: "orderId", value: "o-1" },
        { name: "status", value: "NEW" },
      ];
      assert.deepEqual(await wakeUpsOf("POST", records, { properties }), {
        status: 200,
        wakeUps: 1,
      });
      assert.deepEqual(
        await wakeUpsOf("PUT", `${records}/o-1`, {
          properties: [{ name: "status", value: "SHIPPED" }],
        }),
        { status: 200, wakeUps: 1 },
      );
      assert.deepEqual(await wakeUpsOf("DELETE", `${records}/o-1`), { status: 204, wakeUps: 1 });
    });

    test("a write that fails wakes nobody", async () => {
      assert.deepEqual(await wakeUpsOf("DELETE", `${records}/missing`), {
        status: 404,
        wakeUps: 0,
      });
      assert.deepEqual(
        await wakeUpsOf("PUT", `${profiles}/emailAddress=nobody@example.com`, {
          attributes: [{ name: "firstName", value: "X" }],
        }),
        { status: 404, wakeUps: 0 },
      );
    });
  });
}
