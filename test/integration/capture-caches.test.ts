/**
 * The hot path's caches (api/table-cache.ts, api/auth.ts): concurrent misses share one lookup,
 * and a table change forgets what a lookup in flight was about to store.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Authenticator } from "../../src/api/auth.js";
import { TableCache } from "../../src/api/table-cache.js";
import { HeraldError } from "../../src/domain/errors.js";
import type { Database } from "../../src/storage/database.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

/** The same database, counting the statements whose text contains `marker`. */
function countingDatabase(db: Database, marker: string): { db: Database; count(): number } {
  let count = 0;
  const counting: Database = {
    kind: db.kind,
    capabilities: db.capabilities,
    query: (sql, params, name) => {
      if (sql.includes(marker)) count++;
      return db.query(sql, params, name);
    },
    exec: (sql) => db.exec(sql),
    transaction: (fn) => db.transaction(fn),
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    tryAdvisoryLock: (key) => db.tryAdvisoryLock(key),
    close: () => db.close(),
  };
  return { db: counting, count: () => count };
}

for (const { backend, skip } of await testBackends()) {
  describe(`capture caches on ${backend}`, { skip }, () => {
    let t: TestApp;

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Cached",
        attributes: [{ name: "emailAddress", type: "EMAIL_ADDRESS", unique: true }],
      });
      assert.equal(created.statusCode, 201, created.body);
    });
    after(() => t?.close());

    test("concurrent misses of one table definition share one query; a change forgets the answer in flight", async () => {
      const { db, count } = countingDatabase(t.database.db, "FROM data_tables");
      const cache = new TableCache(db);
      const tables = await Promise.all(
        Array.from({ length: 10 }, () => cache.find(1, "PROFILE_TABLE", "Cached")),
      );
      assert.ok(tables.every((table) => table?.name === "Cached"));
      assert.equal(count(), 1);
      // Cached now: no further query.
      await cache.find(1, "PROFILE_TABLE", "Cached");
      assert.equal(count(), 1);

      // A lookup in flight when the table changes must not store the old definition.
      cache.forget();
      const inFlight = cache.find(1, "PROFILE_TABLE", "Cached");
      cache.forget();
      await inFlight;
      await cache.find(1, "PROFILE_TABLE", "Cached");
      assert.equal(count(), 3, "the lookup after the change asked the database again");
    });

    test("concurrent calls with a new token share one lookup; a wrong token is 401 every time", async () => {
      const { db, count } = countingDatabase(t.database.db, "access_tokens");
      const authenticator = new Authenticator(db);
      const header = `Bearer ${t.token}`;
      const contexts = await Promise.all(
        Array.from({ length: 10 }, () => authenticator.authenticate(header)),
      );
      assert.ok(contexts.every((c) => c.isAdmin));
      assert.equal(count(), 1);
      await authenticator.authenticate(header);
      assert.equal(count(), 1);

      const wrong = Array.from({ length: 3 }, () =>
        authenticator.authenticate("Bearer not-a-token").then(
          () => "accepted",
          (error: unknown) => (error instanceof HeraldError ? error.code : String(error)),
        ),
      );
      assert.deepEqual(await Promise.all(wrong), Array(3).fill("HERALD_INVALID_TOKEN"));
      // Failures are not cached: the next attempt asks again.
      await authenticator.authenticate("Bearer not-a-token").catch(() => undefined);
      assert.equal(count(), 3);
    });
  });
}
