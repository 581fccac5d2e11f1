/** Endpoint-health announcements on both backends: one switch per transition, lease-guarded. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { bootstrap } from "../../src/api/bootstrap.js";
import { endpointHealth, operationalEventFor } from "../../src/domain/endpoint-health.js";
import type { Database } from "../../src/storage/database.js";
import { switchHealthAnnouncement } from "../../src/storage/endpoint-health-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`endpoint health announcements (${backend})`, { skip }, () => {
    let database: TestDatabase;
    let db: Database;
    let id: number;

    before(async () => {
      database = await createTestDatabase(backend);
      db = database.db;
      await bootstrap(db, {
        defaultEntity: "acme",
        adminApiKey: "hk_health_test_key_0123456789abcd",
      });
      const { rows } = await db.query<{ id: number }>(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret,
           state, failing_since, lease_owner, lease_expires_at)
         SELECT id, 'PROFILE_TABLE', '1', 'CREATE', 'https://example.com/hook', 'whsec_x',
                'FAILING', now() - interval '25 hours', 'worker-a', now() + interval '1 minute'
           FROM entities WHERE name = 'acme' RETURNING id`,
      );
      id = rows[0]!.id;
    });
    after(async () => {
      await database?.drop();
    });

    test("a warning is switched on once, shows in the status reason, and only by the lease holder", async () => {
      assert.equal(await switchHealthAnnouncement(db, id, "worker-b", "warn", "x"), "unchanged");
      assert.equal(
        await switchHealthAnnouncement(db, id, "worker-a", "warn", "failing for 25 h"),
        null,
      );
      assert.equal(
        await switchHealthAnnouncement(db, id, "worker-a", "warn", "again"),
        "unchanged",
      );
      const { rows } = await db.query<{ state_reason: string; health_announced: string }>(
        "SELECT state_reason, health_announced FROM webhook_subscriptions WHERE id = $1",
        [id],
      );
      assert.deepEqual(rows[0], { state_reason: "failing for 25 h", health_announced: "warn" });
    });

    test("the engine's loop: health → announcement switch → operational event", async () => {
      const failingSince = new Date(Date.now() - 80 * 3_600_000);
      const health = endpointHealth(failingSince, new Date());
      assert.equal(health.kind, "disable");
      const previous = await switchHealthAnnouncement(db, id, "worker-a", "disable");
      assert.equal(previous, "warn");
      assert.equal(
        operationalEventFor(previous ?? "healthy", health.kind),
        "SUBSCRIPTION_DISABLED",
      );
      const back = await switchHealthAnnouncement(db, id, "worker-a", null);
      assert.equal(back, "disable");
      assert.equal(operationalEventFor(back ?? "healthy", "healthy"), "SUBSCRIPTION_RECOVERED");
      assert.equal(await switchHealthAnnouncement(db, id, "worker-a", null), "unchanged");
    });
  });
}
