import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { insertEntity, insertLicence } from "../../src/storage/tenancy-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`entities on ${backend}`, { skip }, () => {
    let t: TestApp;
    /** A bearer header of a non-admin key limited to TEST_ENTITY. */
    let limited: Record<string, string>;
    before(async () => {
      t = await createTestApp(backend);
      assert.equal((await t.request("POST", "/v4/entity", { name: "beta" })).statusCode, 201);
      // Another licence, with an entity this installation's admin must not see.
      const other = await insertLicence(t.database.db, "other-licence");
      await insertEntity(t.database.db, other, "foreign");
      const created = await t.request("POST", "/v4/api-keys", {
        name: "acme-only",
        entities: [TEST_ENTITY],
      });
      assert.equal(created.statusCode, 201);
      const token = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: created.json().key },
      });
      limited = { authorization: `Bearer ${token.json().accessToken}` };
    });
    after(() => t?.close());

    test("GET /v4/entity lists the entities the key reaches, and only those", async () => {
      const admin = await t.request("GET", "/v4/entity");
      assert.equal(admin.statusCode, 200);
      assert.deepEqual(
        admin.json().entities.map((e: { name: string }) => e.name),
        [TEST_ENTITY, "beta"],
      );
      const own = await t.request("GET", "/v4/entity", undefined, limited);
      assert.deepEqual(
        own.json().entities.map((e: { name: string }) => e.name),
        [TEST_ENTITY],
      );
    });

    test("POST /v4/entity creates an entity; the name must be new and well formed", async () => {
      const created = await t.request("POST", "/v4/entity", { name: "gamma.eu-1" });
      assert.equal(created.statusCode, 201);
      assert.equal(created.headers.location, "/v4/entity/gamma.eu-1");
      assert.equal(created.json().name, "gamma.eu-1");
      assert.ok(Number.isInteger(created.json().id));
      assert.ok(!Number.isNaN(Date.parse(created.json().createdAt)));
      const read = await t.request("GET", "/v4/entity/gamma.eu-1");
      assert.deepEqual(read.json(), created.json());

      const again = await t.request("POST", "/v4/entity", { name: "gamma.eu-1" });
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().code, "HERALD_NAME_TAKEN");
      // Names are unique per licence: another licence's name is free (entity-names.test.ts).

      for (const name of ["", "has space", "a/b", "-leading", "x".repeat(65)]) {
        const bad = await t.request("POST", "/v4/entity", { name });
        assert.equal(bad.statusCode, 400, `name '${name}'`);
        assert.equal(bad.json().details[0].path, "body.name");
      }
      const extra = await t.request("POST", "/v4/entity", { name: "delta", licence: 2 });
      assert.equal(extra.statusCode, 400);
    });

    test("only an admin key creates entities", async () => {
      const res = await t.request("POST", "/v4/entity", { name: "sneaky" }, limited);
      assert.equal(res.statusCode, 403);
      assert.equal(res.json().code, "HERALD_FORBIDDEN");
      assert.equal((await t.request("GET", "/v4/entity/sneaky")).statusCode, 404);
    });

    test("a key limited to one entity gets 403 on another of its licence", async () => {
      assert.equal(
        (await t.request("GET", `/v4/entity/${TEST_ENTITY}`, undefined, limited)).statusCode,
        200,
      );
      const res = await t.request("GET", "/v4/entity/beta", undefined, limited);
      assert.equal(res.statusCode, 403);
      assert.equal(res.json().code, "HERALD_ENTITY_FORBIDDEN");
    });

    test("another licence's entity answers 404, exactly like one that does not exist", async () => {
      const foreign = await t.request("GET", "/v4/entity/foreign");
      const missing = await t.request("GET", "/v4/entity/nowhere");
      assert.equal(foreign.statusCode, 404);
      assert.equal(foreign.json().code, "HERALD_ENTITY_NOT_FOUND");
      const shape = (body: Record<string, unknown>) => ({ ...body, message: "" });
      assert.deepEqual(shape(foreign.json()), shape(missing.json()));
      assert.equal(
        (await t.request("GET", "/v4/entity/foreign", undefined, limited)).statusCode,
        404,
      );
    });

    test("every entity route, read or write, refuses an entity the key may not use (403) or cannot see (404)", async () => {
      const document = (await t.app.inject({ method: "GET", url: "/openapi.json" })).json() as {
        paths: Record<string, Record<string, unknown>>;
      };
      const wrong: string[] = [];
      let checked = 0;
      for (const [path, operations] of Object.entries(document.paths)) {
        if (!path.includes("{entity}")) continue;
        for (const method of Object.keys(operations)) {
          if (!["get", "delete", "post", "put", "patch"].includes(method)) continue;
          const url = (entity: string) =>
            path.replace("{entity}", entity).replace(/\{[^}]+\}/g, "1");
          const verb = method.toUpperCase();
          // Writes send an empty object: a route that validates its body first answers 400
          // whatever the entity (checked below); one that does not must still refuse the entity.
          const body = ["get", "delete"].includes(method) ? undefined : {};
          const forbidden = await t.request(verb, url("beta"), body, limited);
          const hidden = await t.request(verb, url("foreign"), body);
          // A request refused before its entity is looked at (a required query parameter
          // missing) tells nothing about the entity: it must answer exactly as for an entity
          // that does not exist.
          const unknown = await t.request(verb, url("no-such-entity"), body);
          const unknownLimited = await t.request(verb, url("no-such-entity"), body, limited);
          checked += 1;
          if (forbidden.statusCode !== 403 && forbidden.body !== unknownLimited.body)
            wrong.push(`${method} ${url("beta")} → ${forbidden.statusCode}, not 403`);
          if (hidden.statusCode !== 404 && hidden.body !== unknown.body)
            wrong.push(`${method} ${url("foreign")} → ${hidden.statusCode}, not 404`);
          if (hidden.statusCode === 404 && hidden.json().code !== unknown.json().code)
            wrong.push(`${method} ${url("foreign")} answers unlike an unknown entity`);
        }
      }
      assert.ok(checked >= 10, `only ${checked} entity routes checked`);
      assert.deepEqual(wrong, []);
    });
  });
}
