import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { buildApp } from "../../src/api/app.js";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/logger.js";
import { defineCounter } from "../../src/metrics.js";
import { PostgresDatabase } from "../../src/storage/postgres-database.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY, TEST_ENTITY } from "../helpers/test-app.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`operations endpoints on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    test("/healthz says the process is up", async () => {
      const res = await t.app.inject({ method: "GET", url: "/healthz" });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().status, "ok");
    });

    test("/readyz is 200 when migrated and 503 while a migration is pending", async () => {
      const ready = await t.app.inject({ method: "GET", url: "/readyz" });
      assert.equal(ready.statusCode, 200);
      assert.deepEqual(ready.json(), { status: "ready" });
      const { rows } = await t.database.db.query<{ id: number; name: string }>(
        "DELETE FROM herald_migrations WHERE id = (SELECT max(id) FROM herald_migrations) RETURNING id, name",
      );
      try {
        const pending = await t.app.inject({ method: "GET", url: "/readyz" });
        assert.equal(pending.statusCode, 503);
        assert.equal(pending.json().code, "HERALD_UNAVAILABLE");
        assert.match(pending.json().message, /migrations are pending/);
      } finally {
        await t.database.db.query("INSERT INTO herald_migrations (id, name) VALUES ($1, $2)", [
          rows[0]!.id,
          rows[0]!.name,
        ]);
      }
    });

    test("/metrics serves Prometheus text with request counts by route pattern", async () => {
      await t.request("GET", `/v4/entity/${TEST_ENTITY}`);
      const custom = defineCounter("herald_test_widgets_total", "Widgets seen by a test", ["kind"]);
      custom.inc({ kind: "blue" });
      assert.equal(
        defineCounter("herald_test_widgets_total", "Widgets seen by a test", ["kind"]),
        custom,
        "defining a metric twice returns the same one",
      );
      const res = await t.app.inject({ method: "GET", url: "/metrics" });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /^text\/plain/);
      for (const expected of [
        /herald_http_requests_total\{method="GET",route="\/v4\/entity\/:entity",status="200",service="herald"\} \d+/,
        /herald_http_request_duration_seconds_bucket\{/,
        /herald_test_widgets_total\{kind="blue",service="herald"\} \d+/,
        /herald_process_resident_memory_bytes/,
      ]) {
        assert.ok(expected.test(res.body), `/metrics lacks ${expected}`);
      }
    });

    test("/docs serves the OpenAPI UI and /openapi.json the document", async () => {
      const ui = await t.app.inject({ method: "GET", url: "/docs" });
      assert.ok([200, 302].includes(ui.statusCode), `status ${ui.statusCode}`);
      const page = await t.app.inject({ method: "GET", url: "/docs/" });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /swagger/i);
      const doc = await t.app.inject({ method: "GET", url: "/openapi.json" });
      assert.equal(doc.statusCode, 200);
      const paths = Object.keys(doc.json().paths);
      for (const path of ["/auth/token", "/v4/entity", "/v4/api-keys/{id}", "/healthz"]) {
        assert.ok(paths.includes(path), path);
      }
    });
  });
}

describe("readiness without a database", () => {
  test("/readyz is 503 when the database is unreachable; /healthz stays 200", async () => {
    // Port 1 on loopback: nothing listens there, so every connection is refused at once.
    const db = new PostgresDatabase({ connectionString: "postgres://nobody@127.0.0.1:1/none" });
    const app = await buildApp({
      db,
      config: loadConfig({ env: {} }),
      logger: createLogger("silent"),
    });
    try {
      const res = await app.inject({ method: "GET", url: "/readyz" });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().code, "HERALD_UNAVAILABLE");
      assert.match(res.json().message, /unreachable/);
      assert.equal((await app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
    } finally {
      await app.close();
      await db.close();
    }
  });
});

describe("shutdown", () => {
  test("requests that still arrive while the server closes get 503 in the error shape", async () => {
    const database = await createTestDatabase("pglite");
    const app = await buildApp({
      db: database.db,
      config: loadConfig({ env: {} }),
      logger: createLogger("silent"),
    });
    let during: { status: number; connection: string | null; body: unknown } | undefined;
    // Runs after the app's own preClose hook, while the listener still accepts requests.
    app.addHook("preClose", async () => {
      const res = await fetch(`${url}/healthz`);
      during = {
        status: res.status,
        connection: res.headers.get("connection"),
        body: await res.json(),
      };
    });
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
    } finally {
      await app.close();
      await database.drop();
    }
    assert.deepEqual(during, {
      status: 503,
      connection: "close",
      body: {
        status: 503,
        code: "HERALD_UNAVAILABLE",
        message: "Herald is not ready: the server is shutting down",
        details: [],
      },
    });
  });
});

describe("logs", () => {
  test("API keys, tokens and Authorization headers never reach the log, even at trace level", async () => {
    const database = await createTestDatabase("pglite");
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger("trace", sink);
    const { bootstrap } = await import("../../src/api/bootstrap.js");
    await bootstrap(database.db, { defaultEntity: TEST_ENTITY, adminApiKey: TEST_ADMIN_KEY });
    const app = await buildApp({ db: database.db, config: loadConfig({ env: {} }), logger });
    app.get("/echo-fail", async (request) => {
      request.log.info({ headers: request.headers, apiKey: TEST_ADMIN_KEY }, "handler sees");
      throw new Error("failure while handling");
    });
    try {
      const token = (
        await app.inject({
          method: "GET",
          url: "/auth/token",
          headers: { authorization: TEST_ADMIN_KEY },
        })
      ).json().accessToken as string;
      const basic = `Basic ${Buffer.from(`admin:${TEST_ADMIN_KEY}`).toString("base64")}`;
      const created = await app.inject({
        method: "POST",
        url: "/v4/api-keys",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        payload: { name: "logged" },
      });
      const newKey = created.json().key as string;
      await app.inject({ method: "GET", url: "/v4/entity", headers: { authorization: basic } });
      await app.inject({
        method: "GET",
        url: "/echo-fail",
        headers: { authorization: `Bearer ${token}` },
      });
      await app.inject({
        method: "GET",
        url: "/v4/entity",
        headers: { authorization: "Bearer x" },
      });
      logger.info({ req: { headers: { authorization: basic } } }, "nested request");

      const log = lines.join("");
      assert.ok(log.length > 0, "something was logged");
      assert.match(log, /handler sees/);
      for (const secret of [TEST_ADMIN_KEY, token, newKey, basic.slice(6)]) {
        assert.ok(!log.includes(secret), `the log contains a secret: ${secret.slice(0, 8)}…`);
      }
      assert.match(log, /\[redacted\]/);
    } finally {
      await app.close();
      await database.drop();
    }
  });
});
