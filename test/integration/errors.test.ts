import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { buildApp } from "../../src/api/app.js";
import { loadConfig } from "../../src/config/config.js";
import { ERRORS } from "../../src/domain/errors.js";
import { createLogger } from "../../src/logger.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

/** Every error body has exactly the SPEC §2 shape and a code from the catalogue. */
function assertErrorBody(body: unknown, status: number, code: string): void {
  const b = body as { status: number; code: string; message: string; details: unknown[] };
  assert.deepEqual(Object.keys(b).sort(), ["code", "details", "message", "status"]);
  assert.equal(b.status, status);
  assert.equal(b.code, code);
  assert.ok(code in ERRORS, `${code} is in the catalogue`);
  assert.equal(typeof b.message, "string");
  assert.ok(Array.isArray(b.details));
}

for (const { backend, skip } of await testBackends()) {
  describe(`bad input on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend, { bodyLimitBytes: 2048 });
    });
    after(() => t?.close());

    test("malformed JSON is 400 HERALD_MALFORMED_JSON", async () => {
      for (const payload of ['{"name": ', "{'name': 'x'}", "nul", '{"__proto__": {"x": 1}}']) {
        const res = await t.request("POST", "/v4/entity", payload);
        assert.equal(res.statusCode, 400, payload);
        assertErrorBody(res.json(), 400, "HERALD_MALFORMED_JSON");
      }
      const empty = await t.request("POST", "/v4/entity", "");
      assertErrorBody(empty.json(), 400, "HERALD_MALFORMED_JSON");
    });

    test("DELETE and GET with a JSON content type and no body are served (clients send it on every call)", async () => {
      const created = await t.request("POST", "/v4/api-keys", { name: "short-lived" });
      assert.equal(created.statusCode, 201, created.body);
      const json = { "content-type": "application/json" };
      const read = await t.request("GET", "/v4/entity", "", json);
      assert.equal(read.statusCode, 200, read.body);
      const url = `/v4/api-keys/${created.json().id}`;
      const deleted = await t.request("DELETE", url, "", json);
      assert.equal(deleted.statusCode, 204, deleted.body);
      // A body that is there is still parsed, and still refused when it is not JSON.
      const broken = await t.request("DELETE", url, "{oops", json);
      assertErrorBody(broken.json(), 400, "HERALD_MALFORMED_JSON");
    });

    test("a body that is not JSON is 415", async () => {
      for (const contentType of [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
      ]) {
        const res = await t.request("POST", "/v4/entity", "name=x", {
          "content-type": contentType,
        });
        assert.equal(res.statusCode, 415, contentType);
        assertErrorBody(res.json(), 415, "HERALD_UNSUPPORTED_MEDIA_TYPE");
      }
      const charset = await t.request(
        "POST",
        "/v4/entity",
        { name: "utf8" },
        {
          "content-type": "application/json; charset=utf-8",
        },
      );
      assert.equal(charset.statusCode, 201);
    });

    test("a body over the limit is 413", async () => {
      const res = await t.request("POST", "/v4/entity", { name: "x".repeat(4096) });
      assert.equal(res.statusCode, 413);
      assertErrorBody(res.json(), 413, "HERALD_BODY_TOO_LARGE");
      assert.match(res.json().message, /2048 bytes/);
    });

    test("schema violations are 400 with the path of every offending field", async () => {
      const res = await t.request("POST", "/v4/api-keys", { name: 7, entities: "acme", extra: 1 });
      assert.equal(res.statusCode, 400);
      assertErrorBody(res.json(), 400, "HERALD_VALIDATION");
      const paths = (res.json().details as { path: string }[]).map((d) => d.path);
      assert.ok(paths.includes("body.name"), paths.join());
      assert.ok(paths.includes("body.entities"), paths.join());
      const params = await t.request("DELETE", "/v4/api-keys/not-a-number");
      assertErrorBody(params.json(), 400, "HERALD_VALIDATION");
      assert.equal(params.json().details[0].path, "params.id");
      const missing = await t.request("POST", "/v4/entity", {});
      assertErrorBody(missing.json(), 400, "HERALD_VALIDATION");
      assert.ok(missing.json().details.length > 0);
    });

    test("authentication comes before the body: a bad token with bad JSON is 401", async () => {
      const res = await t.request("POST", "/v4/entity", "{", { authorization: "Bearer nope" });
      assertErrorBody(res.json(), 401, "HERALD_INVALID_TOKEN");
    });

    test("an unknown route is 404, with or without a token", async () => {
      for (const url of ["/nowhere", "/v4/nothing/here", "/v5/entities", "/webhooks/v4/nope"]) {
        const res = await t.request("GET", url);
        assert.equal(res.statusCode, 404, url);
        assertErrorBody(res.json(), 404, "HERALD_NOT_FOUND");
        const anonymous = await t.app.inject({ method: "GET", url });
        assert.equal(anonymous.statusCode, 404, url);
      }
    });

    test("a 404 names the path as the client sent it, service prefix included", async () => {
      const res = await t.request("GET", "/webhooks/v4/entity/acme/nothing?x=1");
      assert.equal(res.statusCode, 404);
      const body = res.json() as { message: string };
      assert.ok(body.message.includes("/webhooks/v4/entity/acme/nothing"), body.message);
      assert.ok(!body.message.includes("?x=1"), body.message);
      const legacy = await t.request("POST", "/ActitoWebServices/ws/v4/api-keys/3");
      assert.ok(
        (legacy.json() as { message: string }).message.includes(
          "/ActitoWebServices/ws/v4/api-keys/3",
        ),
        legacy.body,
      );
    });

    test("a known path with another method is 405 with Allow", async () => {
      const res = await t.request("PUT", "/v4/entity", { name: "x" });
      assert.equal(res.statusCode, 405);
      assertErrorBody(res.json(), 405, "HERALD_METHOD_NOT_ALLOWED");
      assert.equal(res.headers.allow, "GET, HEAD, POST");
      const param = await t.request("PATCH", "/v4/entity/acme");
      assert.equal(param.statusCode, 405);
      assert.equal(param.headers.allow, "GET, HEAD");
      const prefixed = await t.request("POST", "/ActitoWebServices/ws/v4/api-keys/3");
      assert.equal(prefixed.statusCode, 405);
      assert.equal(prefixed.headers.allow, "DELETE");
    });
  });
}

describe("internal errors", () => {
  test("a 500 names the request id and leaks nothing; the log has the details", async () => {
    const database = await createTestDatabase("pglite");
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const app = await buildApp({
      db: database.db,
      config: loadConfig({ env: {} }),
      logger: createLogger("info", sink),
    });
    app.get("/boom", { config: { public: true } }, async () => {
      throw new Error("secret internals: password=hunter2 at /srv/herald/src/x.ts:12");
    });
    app.get("/sql", { config: { public: true } }, async () => {
      await database.db.query("SELECT * FROM no_such_table");
      return {};
    });
    try {
      for (const url of ["/boom", "/sql"]) {
        const res = await app.inject({ method: "GET", url });
        assert.equal(res.statusCode, 500, url);
        assertErrorBody(res.json(), 500, "HERALD_INTERNAL");
        assert.ok(!/hunter2|no_such_table|\/srv\/|at /.test(res.body), res.body);
        assert.match(res.json().message, /request id \S+/);
      }
      const log = lines.join("");
      assert.match(log, /hunter2/, "the log keeps the cause for the operator");
      assert.match(log, /no_such_table/);
    } finally {
      await app.close();
      await database.drop();
    }
  });
});
