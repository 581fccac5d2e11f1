/**
 * Housekeeping keeps the change log an ACTIVE scenario's starter has not read yet (docs/scenarios.md,
 * "What each block guarantees"): the live floor never passes the lowest cursor of an ACTIVE
 * scenario whose start reads the log, and an INACTIVE scenario or one started by API holds nothing
 * back (its next activation starts at the head; an API start never moves its cursor).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readLogHead } from "../../src/storage/change-event-repository.js";
import { liveLogFloor } from "../../src/storage/housekeeping-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const SCENARIOS = `/v5/entities/${TEST_ENTITY}/scenarios`;
const PROFILES = `/v5/entities/${TEST_ENTITY}/profile-tables/Members/profiles`;

for (const { backend, skip } of await testBackends()) {
  describe(`the log floor and scenario cursors (${backend})`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
      const table = await t.request("POST", `/v5/entities/${TEST_ENTITY}/profile-tables`, {
        name: "Members",
        attributes: [{ name: "code", type: "CUSTOM", valueType: "STRING", unique: true }],
      });
      assert.equal(table.statusCode, 201, table.body);
    });
    after(() => t.close());

    async function writeProfiles(codes: string[]): Promise<void> {
      for (const code of codes) {
        const written = await t.request("PUT", PROFILES, { key: { code }, attributes: { code } });
        assert.ok(written.statusCode < 300, written.body);
      }
      await stampPendingEvents(t.database.db);
    }

    test("an ACTIVE log-started scenario's cursor holds the log; an inactive or API one does not", async () => {
      const db = t.database.db;
      const created = await t.request("POST", SCENARIOS, {
        name: "members-welcome",
        profileTable: "Members",
        start: { type: "DATA_EVENT", eventType: "CREATE" },
        blocks: [{ id: "end", type: "EXIT" }],
      });
      assert.equal(created.statusCode, 201, created.body);
      const { id } = created.json<{ id: string }>();
      await writeProfiles(["A", "B"]);
      const activated = await t.request("POST", `${SCENARIOS}/${id}/activate`);
      assert.equal(activated.statusCode, 200, activated.body);
      const cursor = Number(
        (
          await db.query<{ log_cursor: string }>("SELECT log_cursor FROM scenarios WHERE id = $1", [
            id,
          ])
        ).rows[0]!.log_cursor,
      );
      assert.equal(cursor, await readLogHead(db));

      // Events after the activation, not yet read by a starter (none runs in this app).
      await writeProfiles(["C", "D"]);
      assert.ok((await readLogHead(db)) > cursor);
      assert.equal(await liveLogFloor(db), cursor, "the floor stops at the unread events");

      // A start that does not read the log (API, DATE) never moves its cursor: it holds nothing.
      const byApi = await t.request("POST", SCENARIOS, {
        name: "members-by-api",
        profileTable: "Members",
        start: { type: "API" },
        blocks: [{ id: "end", type: "EXIT" }],
      });
      assert.equal(byApi.statusCode, 201, byApi.body);
      const apiId = byApi.json<{ id: string }>().id;
      assert.equal((await t.request("POST", `${SCENARIOS}/${apiId}/activate`)).statusCode, 200);
      await writeProfiles(["E"]);
      assert.equal(await liveLogFloor(db), cursor, "the API scenario adds no floor of its own");

      const deactivated = await t.request("POST", `${SCENARIOS}/${id}/deactivate`);
      assert.equal(deactivated.statusCode, 200, deactivated.body);
      assert.equal(
        await liveLogFloor(db),
        await readLogHead(db),
        "an inactive scenario holds nothing",
      );
    });
  });
}
