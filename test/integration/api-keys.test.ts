import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hashSecret } from "../../src/api/api-key-secrets.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`API keys on ${backend}`, { skip }, () => {
    let t: TestApp;
    const tokenFor = async (key: string) => {
      const res = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: key },
      });
      assert.equal(res.statusCode, 200);
      return { authorization: `Bearer ${res.json().accessToken}` };
    };
    before(async () => {
      t = await createTestApp(backend);
      await t.request("POST", "/v4/entity", { name: "beta" });
    });
    after(() => t?.close());

    test("POST returns the raw key once; the database holds only its hash", async () => {
      const res = await t.request("POST", "/v4/api-keys", {
        name: "shop",
        entities: [TEST_ENTITY, "beta"],
      });
      assert.equal(res.statusCode, 201);
      const body = res.json();
      assert.match(body.key, /^hk_[A-Za-z0-9_-]{43}$/);
      assert.equal(res.headers.location, `/v4/api-keys/${body.id}`);
      assert.deepEqual(
        { ...body, id: 0, key: "", createdAt: "" },
        {
          id: 0,
          name: "shop",
          keyPrefix: body.key.slice(0, 10),
          isAdmin: false,
          entities: [TEST_ENTITY, "beta"],
          createdAt: "",
          key: "",
        },
      );
      const { rows } = await t.database.db.query<{ key_hash: string }>(
        "SELECT key_hash FROM api_keys WHERE id = $1",
        [body.id],
      );
      assert.equal(rows[0]!.key_hash, hashSecret(body.key));
      const dump = JSON.stringify((await t.database.db.query("SELECT * FROM api_keys")).rows);
      assert.ok(!dump.includes(body.key), "the raw key is not stored");

      const list = await t.request("GET", "/v4/api-keys");
      assert.equal(list.statusCode, 200);
      const listed = list.json().apiKeys.find((k: { id: number }) => k.id === body.id);
      assert.deepEqual(listed, withoutKey(body));
      assert.ok(!JSON.stringify(list.json()).includes(body.key), "the list never shows a key");
      assert.ok(
        list
          .json()
          .apiKeys.some(
            (k: { name: string; isAdmin: boolean; entities: unknown }) =>
              k.name === "admin" && k.isAdmin && k.entities === null,
          ),
      );
    });

    test("a key limited to entities reaches exactly those", async () => {
      const res = await t.request("POST", "/v4/api-keys", {
        name: "beta-only",
        entities: ["beta"],
      });
      const auth = await tokenFor(res.json().key);
      assert.equal((await t.request("GET", "/v4/entity/beta", undefined, auth)).statusCode, 200);
      assert.equal(
        (await t.request("GET", `/v4/entity/${TEST_ENTITY}`, undefined, auth)).statusCode,
        403,
      );
    });

    test("a key without entities reaches every entity, including later ones", async () => {
      const res = await t.request("POST", "/v4/api-keys", { name: "everything" });
      assert.equal(res.json().entities, null);
      const auth = await tokenFor(res.json().key);
      await t.request("POST", "/v4/entity", { name: "later" });
      assert.equal((await t.request("GET", "/v4/entity/later", undefined, auth)).statusCode, 200);
    });

    test("non-admin keys get 403 on every API-key route", async () => {
      const res = await t.request("POST", "/v4/api-keys", { name: "plain" });
      const auth = await tokenFor(res.json().key);
      for (const [method, url, body] of [
        ["GET", "/v4/api-keys", undefined],
        ["POST", "/v4/api-keys", { name: "escalate", isAdmin: true }],
        ["DELETE", `/v4/api-keys/${res.json().id}`, undefined],
      ] as const) {
        const answer = await t.request(method, url, body, auth);
        assert.equal(answer.statusCode, 403, `${method} ${url}`);
        assert.equal(answer.json().code, "HERALD_FORBIDDEN");
      }
    });

    test("an admin key created through the API may manage keys", async () => {
      const res = await t.request("POST", "/v4/api-keys", { name: "second-admin", isAdmin: true });
      assert.equal(res.statusCode, 201);
      assert.equal(res.json().isAdmin, true);
      const auth = await tokenFor(res.json().key);
      assert.equal((await t.request("GET", "/v4/api-keys", undefined, auth)).statusCode, 200);
    });

    test("bad requests: unknown entity, taken name, admin limited to entities, extra fields", async () => {
      const unknown = await t.request("POST", "/v4/api-keys", {
        name: "x",
        entities: ["beta", "nope"],
      });
      assert.equal(unknown.statusCode, 400);
      assert.deepEqual(unknown.json().details, [
        { path: "body.entities.1", message: "entity 'nope' does not exist" },
      ]);
      assert.equal((await t.request("POST", "/v4/api-keys", { name: "dup" })).statusCode, 201);
      const taken = await t.request("POST", "/v4/api-keys", { name: "dup" });
      assert.equal(taken.statusCode, 409);
      assert.equal(taken.json().code, "HERALD_NAME_TAKEN");
      const limitedAdmin = await t.request("POST", "/v4/api-keys", {
        name: "y",
        isAdmin: true,
        entities: ["beta"],
      });
      assert.equal(limitedAdmin.statusCode, 400);
      assert.equal(limitedAdmin.json().details[0].path, "body.entities");
      for (const body of [{}, { name: "" }, { name: "z", admin: true }, { name: 5 }]) {
        const bad = await t.request("POST", "/v4/api-keys", body);
        assert.equal(bad.statusCode, 400, JSON.stringify(body));
        assert.equal(bad.json().code, "HERALD_VALIDATION");
      }
    });

    test("DELETE revokes; the name is free again; unknown ids and self-revocation are refused", async () => {
      const first = await t.request("POST", "/v4/api-keys", { name: "rotating" });
      assert.equal((await t.request("DELETE", `/v4/api-keys/${first.json().id}`)).statusCode, 204);
      const gone = await t.request("DELETE", `/v4/api-keys/${first.json().id}`);
      assert.equal(gone.statusCode, 404);
      assert.equal(gone.json().code, "HERALD_API_KEY_NOT_FOUND");
      const listed = (await t.request("GET", "/v4/api-keys")).json().apiKeys;
      assert.ok(!listed.some((k: { id: number }) => k.id === first.json().id));
      assert.equal((await t.request("POST", "/v4/api-keys", { name: "rotating" })).statusCode, 201);

      const admin = listed.find((k: { name: string }) => k.name === "admin");
      const self = await t.request("DELETE", `/v4/api-keys/${admin.id}`);
      assert.equal(self.statusCode, 409);
      assert.equal((await t.request("DELETE", "/v4/api-keys/999999")).statusCode, 404);
      assert.equal((await t.request("DELETE", "/v4/api-keys/abc")).statusCode, 400);
    });
  });
}

function withoutKey<T extends { key?: string }>(body: T): Omit<T, "key"> {
  const { key: _key, ...rest } = body;
  return rest;
}
