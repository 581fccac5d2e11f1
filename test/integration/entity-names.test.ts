/**
 * Issue #19 defect 8: creating an entity whose name another licence uses answered 409 "Entity 'x'
 * already exists", telling another licence's admin that it exists. Names stay unique across the
 * installation (paths name an entity without its licence), so the creation still fails, but the
 * answer says only that the name is not available.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { insertEntity, insertLicence } from "../../src/storage/tenancy-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`entity names held by another licence on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
      const other = await insertLicence(t.database.db, "northwind-licence");
      await insertEntity(t.database.db, other, "northwind");
    });
    after(() => t?.close());

    test("a name another licence holds is refused without saying that it exists or whose it is", async () => {
      const res = await t.request("POST", "/v4/entity", { name: "northwind" });
      assert.equal(res.statusCode, 409, res.body);
      const body = res.json() as { status: number; code: string; message: string; details: [] };
      assert.equal(body.code, "HERALD_ENTITY_NAME_UNAVAILABLE");
      assert.deepEqual(body.details, []);
      assert.doesNotMatch(body.message, /exist|licence '|northwind-licence/i);
      // And the caller still cannot see it.
      assert.equal((await t.request("GET", "/v4/entity/northwind")).statusCode, 404);
      const { rows } = await t.database.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM entities WHERE name = 'northwind'",
      );
      assert.equal(rows[0]?.n, 1);
    });

    test("a name of the caller's own licence is still 'already exists' (the caller can list it)", async () => {
      assert.equal((await t.request("POST", "/v4/entity", { name: "mine" })).statusCode, 201);
      const again = await t.request("POST", "/v4/entity", { name: "mine" });
      assert.equal(again.statusCode, 409);
      assert.equal((again.json() as { code: string }).code, "HERALD_NAME_TAKEN");
    });
  });
}
