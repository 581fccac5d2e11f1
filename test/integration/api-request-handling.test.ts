/**
 * The API's per-request machinery (src/api/schema-validator.ts, request-logger.ts): query strings
 * and path parameters are converted ("true" to true, "5" to 5) by a fast path for the usual
 * spellings and by TypeBox's Value.Convert for the rest, with the same answers; and a request's
 * logger, made on first use, still carries the request id.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { buildApp } from "../../src/api/app.js";
import { bootstrap } from "../../src/api/bootstrap.js";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/logger.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const URL = "/v4/entity/acme/table/People/profile";
const body = (email: string, firstName: string) => ({
  attributes: [
    { name: "emailAddress", value: email },
    { name: "firstName", value: firstName },
  ],
});

for (const { backend, skip } of await testBackends()) {
  describe(`API request handling on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "People",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "firstName", type: "FIRSTNAME" },
        ],
      });
      assert.equal(created.statusCode, 201, created.body);
    });
    after(async () => t?.close());

    test("allowUpdate: true and 1 update, false and absent create, anything else is 400", async () => {
      const first = await t.request("POST", `${URL}?allowUpdate=true`, body("q@x.io", "A"));
      assert.equal(first.statusCode, 200, first.body);
      const id = first.json().profileId as number;
      for (const spelling of ["true", "1"]) {
        const again = await t.request(
          "POST",
          `${URL}?allowUpdate=${spelling}`,
          body("q@x.io", spelling),
        );
        assert.equal(again.statusCode, 200, again.body);
        assert.equal(again.json().profileId, id, `allowUpdate=${spelling} updates`);
      }
      for (const query of ["?allowUpdate=false", "?allowUpdate=0", ""]) {
        const taken = await t.request("POST", `${URL}${query}`, body("q@x.io", "B"));
        assert.equal(taken.statusCode, 409, `${query}: ${taken.body}`);
      }
      for (const bad of ["yes", "TRUE ", ""]) {
        const res = await t.request(
          "POST",
          `${URL}?allowUpdate=${encodeURIComponent(bad)}`,
          body("r@x.io", "C"),
        );
        assert.equal(res.statusCode, 400, `allowUpdate=${bad}: ${res.body}`);
        assert.equal(res.json().code, "HERALD_VALIDATION");
        assert.equal(res.json().details[0].path, "querystring.allowUpdate");
      }
      const read = await t.request("GET", `${URL}/${id}`);
      const names = (read.json().attributes as { name: string; value: string }[]).find(
        (a) => a.name === "firstName",
      );
      assert.equal(names?.value, "1", "the last accepted upsert wrote");
    });

    test("integer query values: decimal spellings convert alike; out of range or not a decimal integer is 400", async () => {
      for (const email of ["s1@x.io", "s2@x.io", "s3@x.io"]) {
        const res = await t.request("POST", URL, body(email, "Same"));
        assert.equal(res.statusCode, 200, res.body);
      }
      for (const [number, expected] of [
        ["2", 2],
        ["02", 2],
        ["3", 3],
      ] as const) {
        const res = await t.request("GET", `${URL}?search=firstName=Same&number=${number}`);
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.json().profiles.length, expected, `number=${number}`);
      }
      for (const number of ["0", "1001", "-1", "two", "1.5", "2.0", "1e2", "0x10", "%202", ""]) {
        const res = await t.request("GET", `${URL}?search=firstName=Same&number=${number}`);
        assert.equal(res.statusCode, 400, `number=${number}: ${res.body}`);
        assert.equal(res.json().details[0].path, "querystring.number");
      }
    });

    test("a page past the deepest one a list answers is 400, not a database error", async () => {
      const created = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        on: "PROFILE_TABLE",
        onElementId: "People",
        eventType: "CREATE",
        targetUrl: "http://127.0.0.1:9/h",
      });
      assert.equal(created.statusCode, 201, created.body);
      const id = (created.json() as { id: number }).id;
      for (const list of [
        "/v4/entity/acme/webhookSubscription",
        `/v4/entity/acme/webhookSubscription/${id}/attempts`,
        "/mass-imports/v5/entities/acme/etl-executions",
        "/v5/entities/acme/profile-tables/People/profiles",
      ]) {
        const deepest = await t.request("GET", `${list}?page=100000`);
        assert.equal(deepest.statusCode, 200, `${list}: ${deepest.body}`);
        for (const page of ["100001", "100000000000000000000"]) {
          const res = await t.request("GET", `${list}?page=${page}`);
          assert.equal(res.statusCode, 400, `${list}?page=${page}: ${res.body}`);
          assert.equal(res.json().details[0].path, "querystring.page");
        }
      }
    });
  });
}

describe("request logger", () => {
  test("a route's log line carries the request id; quiet requests log nothing", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString("utf8").split("\n"))
          if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const database = await createTestDatabase("pglite");
    const config = {
      ...loadConfig({ env: {} }),
      defaultEntity: "acme",
      adminApiKey: TEST_ADMIN_KEY,
    };
    await bootstrap(database.db, { defaultEntity: "acme", adminApiKey: TEST_ADMIN_KEY });
    const app = await buildApp({ db: database.db, config, logger: createLogger("info", sink) });
    try {
      await app.ready();
      const token = await app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: TEST_ADMIN_KEY },
      });
      assert.equal(token.statusCode, 200);
      const quiet = lines.length;
      const created = await app.inject({
        method: "POST",
        url: "/v4/entity",
        headers: {
          authorization: `Bearer ${(token.json() as { accessToken: string }).accessToken}`,
          "content-type": "application/json",
        },
        payload: JSON.stringify({ name: "logged" }),
      });
      assert.equal(created.statusCode, 201, created.body);
      const logged = lines.slice(quiet).find((l) => l.msg === "entity created");
      assert.ok(logged, JSON.stringify(lines));
      assert.equal(typeof logged.reqId, "string");
      assert.equal(logged.entity, "logged");
      assert.equal(logged.service, "herald");
    } finally {
      await app.close();
      await database.drop();
    }
  });
});
