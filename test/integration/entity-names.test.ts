/**
 * Issue #19 defect 8: creating an entity whose name another licence uses answered 409 "Entity 'x'
 * already exists", telling another licence's admin that it exists. Entity names are now unique per
 * licence (migration 019; a path's entity is resolved within the caller's licence), so such a name
 * is created like any other, and each licence sees only its own entity of that name.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hashSecret, keyPrefix } from "../../src/api/api-key-secrets.js";
import { insertApiKey, insertEntity, insertLicence } from "../../src/storage/tenancy-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const OTHER_KEY = "hk_northwind_admin_key_0123456789ab";

for (const { backend, skip } of await testBackends()) {
  describe(`entity names are per licence on ${backend}`, { skip }, () => {
    let t: TestApp;
    let otherToken: string;
    before(async () => {
      t = await createTestApp(backend);
      const other = await insertLicence(t.database.db, "northwind-licence");
      await insertEntity(t.database.db, other, "northwind");
      await insertApiKey(t.database.db, {
        licenceId: other,
        name: "admin",
        keyHash: hashSecret(OTHER_KEY),
        keyPrefix: keyPrefix(OTHER_KEY),
        isAdmin: true,
        entityIds: null,
      });
      const auth = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: OTHER_KEY },
      });
      otherToken = (auth.json() as { accessToken: string }).accessToken;
    });
    after(() => t?.close());

    test("a name another licence holds is created like any new name, revealing nothing", async () => {
      const unseen = await t.request("POST", "/v4/entity", { name: "never-used-anywhere" });
      const taken = await t.request("POST", "/v4/entity", { name: "northwind" });
      assert.equal(unseen.statusCode, 201, unseen.body);
      assert.equal(taken.statusCode, 201, taken.body);
      assert.deepEqual(Object.keys(taken.json() as object), Object.keys(unseen.json() as object));
      const { rows } = await t.database.db.query<{ n: number }>(
        "SELECT count(DISTINCT licence_id)::int AS n FROM entities WHERE name = 'northwind'",
      );
      assert.equal(rows[0]?.n, 2, "one entity of that name in each licence");
    });

    test("each licence reaches only its own entity of a shared name", async () => {
      const table = {
        name: "Customers",
        attributes: [{ name: "email", type: "EMAIL_ADDRESS", unique: true }],
      };
      const mine = await t.request("POST", "/v5/entities/northwind/profile-tables", table);
      assert.equal(mine.statusCode, 201, mine.body);
      const theirs = await t.request("GET", "/v5/entities/northwind/profile-tables", undefined, {
        authorization: `Bearer ${otherToken}`,
      });
      assert.equal(theirs.statusCode, 200, theirs.body);
      assert.deepEqual((theirs.json() as { profileTables: unknown[] }).profileTables, []);
      const listed = await t.request("GET", "/v4/entity", undefined, {
        authorization: `Bearer ${otherToken}`,
      });
      assert.deepEqual(
        (listed.json() as { entities: { name: string }[] }).entities.map((e) => e.name),
        ["northwind"],
      );
    });

    test("a name of the caller's own licence is still 'already exists' (the caller can list it)", async () => {
      assert.equal((await t.request("POST", "/v4/entity", { name: "mine" })).statusCode, 201);
      const again = await t.request("POST", "/v4/entity", { name: "mine" });
      assert.equal(again.statusCode, 409);
      assert.equal((again.json() as { code: string }).code, "HERALD_NAME_TAKEN");
    });
  });
}
