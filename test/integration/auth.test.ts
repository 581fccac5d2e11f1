import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const basic = (user: string, key: string) =>
  `Basic ${Buffer.from(`${user}:${key}`).toString("base64")}`;

for (const { backend, skip } of await testBackends()) {
  describe(`authentication on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    test("GET /auth/token trades the raw API key for a 15-minute bearer token", async () => {
      const res = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: TEST_ADMIN_KEY },
      });
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), [
        "accessToken",
        "expiresIn",
        "jti",
        "scope",
        "tokenType",
      ]);
      assert.equal(body.tokenType, "bearer");
      assert.equal(body.expiresIn, "900s");
      assert.equal(body.scope, "read write");
      assert.match(body.jti, /^[0-9a-f-]{36}$/);
      const use = await t.request("GET", "/v4/entity", undefined, {
        authorization: `Bearer ${body.accessToken}`,
      });
      assert.equal(use.statusCode, 200);
    });

    test("a wrong or missing API key gets no token", async () => {
      const wrong = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: "hk_not_a_key" },
      });
      assert.equal(wrong.statusCode, 401);
      assert.equal(wrong.json().code, "HERALD_INVALID_API_KEY");
      const missing = await t.app.inject({ method: "GET", url: "/auth/token" });
      assert.equal(missing.statusCode, 401);
      assert.equal(missing.json().code, "HERALD_UNAUTHENTICATED");
    });

    test("a missing, malformed or unknown token is 401 with the error body", async () => {
      for (const authorization of [undefined, "Bearer", "Bearer hat_nope", "Token x", "hat_x"]) {
        const res = await t.app.inject({
          method: "GET",
          url: "/v4/entity",
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(res.statusCode, 401, `authorization ${authorization}`);
        assert.deepEqual(res.json(), {
          status: 401,
          code: "HERALD_INVALID_TOKEN",
          message: "The access token is missing, invalid or expired",
          details: [],
        });
      }
    });

    test("an expired token is 401", async () => {
      const res = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: TEST_ADMIN_KEY },
      });
      const { accessToken, jti } = res.json() as { accessToken: string; jti: string };
      await t.database.db.query(
        "UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE jti = $1",
        [jti],
      );
      const expired = await t.request("GET", "/v4/entity", undefined, {
        authorization: `Bearer ${accessToken}`,
      });
      assert.equal(expired.statusCode, 401);
      assert.equal(expired.json().code, "HERALD_INVALID_TOKEN");
    });

    test("legacy HTTP Basic on /ActitoWebServices/ws/v4 behaves like a bearer call", async () => {
      const bearer = await t.request("GET", `/v4/entity/${TEST_ENTITY}`);
      assert.equal(bearer.statusCode, 200);
      for (const user of ["herald/admin", "admin", ""]) {
        const legacy = await t.app.inject({
          method: "GET",
          url: `/ActitoWebServices/ws/v4/entity/${TEST_ENTITY}`,
          headers: { authorization: basic(user, TEST_ADMIN_KEY) },
        });
        assert.equal(legacy.statusCode, 200, `user '${user}'`);
        assert.deepEqual(legacy.json(), bearer.json());
      }
      const listed = await t.app.inject({
        method: "GET",
        url: "/ActitoWebServices/ws/v4/entity",
        headers: { authorization: basic("herald/admin", TEST_ADMIN_KEY) },
      });
      assert.deepEqual(listed.json(), (await t.request("GET", "/v4/entity")).json());
    });

    test("legacy HTTP Basic writes like a bearer call, with the same errors", async () => {
      const headers = {
        authorization: basic("herald/admin", TEST_ADMIN_KEY),
        "content-type": "application/json",
      };
      const created = await t.app.inject({
        method: "POST",
        url: "/ActitoWebServices/ws/v4/entity",
        headers,
        payload: { name: "legacy-made" },
      });
      assert.equal(created.statusCode, 201);
      assert.equal((await t.request("GET", "/v4/entity/legacy-made")).statusCode, 200);
      const invalid = await t.app.inject({
        method: "POST",
        url: "/ActitoWebServices/ws/v4/entity",
        headers,
        payload: { name: "no spaces allowed" },
      });
      const viaBearer = await t.request("POST", "/v4/entity", { name: "no spaces allowed" });
      assert.equal(invalid.statusCode, 400);
      assert.deepEqual(invalid.json(), viaBearer.json());
    });

    test("HTTP Basic with a wrong key, licence or key name is 401", async () => {
      for (const header of [
        basic("herald/admin", "hk_wrong"),
        basic("other/admin", TEST_ADMIN_KEY),
        basic("herald/someone", TEST_ADMIN_KEY),
        basic("someone", TEST_ADMIN_KEY),
        `Basic ${Buffer.from("no-colon").toString("base64")}`,
        "Basic !!!",
      ]) {
        const res = await t.app.inject({
          method: "GET",
          url: `/ActitoWebServices/ws/v4/entity/${TEST_ENTITY}`,
          headers: { authorization: header },
        });
        assert.equal(res.statusCode, 401, header);
        assert.equal(res.json().code, "HERALD_INVALID_API_KEY");
      }
    });

    test("a revoked key's tokens and Basic credentials stop working at once", async () => {
      const created = await t.request("POST", "/v4/api-keys", { name: "short-lived" });
      assert.equal(created.statusCode, 201);
      const { id, key } = created.json() as { id: number; key: string };
      const token = (
        await t.app.inject({ method: "GET", url: "/auth/token", headers: { authorization: key } })
      ).json().accessToken as string;
      const asKey = { authorization: `Bearer ${token}` };
      const asBasic = { authorization: basic("short-lived", key) };
      assert.equal((await t.request("GET", "/v4/entity", undefined, asKey)).statusCode, 200);
      assert.equal((await t.request("GET", "/v4/entity", undefined, asBasic)).statusCode, 200);
      assert.equal((await t.request("DELETE", `/v4/api-keys/${id}`)).statusCode, 204);
      assert.equal((await t.request("GET", "/v4/entity", undefined, asKey)).statusCode, 401);
      assert.equal((await t.request("GET", "/v4/entity", undefined, asBasic)).statusCode, 401);
      const again = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: key },
      });
      assert.equal(again.statusCode, 401);
    });

    test("public routes answer without a token", async () => {
      for (const url of ["/healthz", "/openapi.json", "/metrics"]) {
        const res = await t.app.inject({ method: "GET", url });
        assert.equal(res.statusCode, 200, url);
      }
    });
  });
}
