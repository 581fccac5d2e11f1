import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RateLimiter } from "../../src/api/rate-limiter.js";
import { HeraldError } from "../../src/domain/errors.js";
import { buildApp } from "../../src/api/app.js";
import { bootstrap } from "../../src/api/bootstrap.js";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/logger.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { createTestDatabase } from "../helpers/test-database.js";

function refusal(fn: () => unknown): HeraldError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof HeraldError);
    return error;
  }
  assert.fail("expected a 429");
}

describe("rate limiter", () => {
  test("calls per minute: a full bucket, then a steady refill, per licence", () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 3, concurrent: 0 }, () => now);
    for (let i = 0; i < 3; i++) limiter.admit(1)();
    const error = refusal(() => limiter.admit(1));
    assert.equal(error.status, 429);
    assert.equal(error.code, "HERALD_RATE_LIMITED");
    assert.equal(error.headers["retry-after"], "20", "one call refills in 60 s / 3");
    limiter.admit(2)(); // another licence has its own bucket
    now = 19_000;
    assert.equal(refusal(() => limiter.admit(1)).headers["retry-after"], "1");
    now = 20_000;
    limiter.admit(1)();
    assert.throws(() => limiter.admit(1));
    now = 1_000_000; // a long pause refills up to the limit, not beyond
    for (let i = 0; i < 3; i++) limiter.admit(1)();
    assert.throws(() => limiter.admit(1));
  });

  test("concurrent requests: a slot frees when its request ends, once", () => {
    const limiter = new RateLimiter({ perMinute: 0, concurrent: 2 });
    const first = limiter.admit(1);
    const second = limiter.admit(1);
    const error = refusal(() => limiter.admit(1));
    assert.equal(error.headers["retry-after"], "1");
    first();
    first(); // releasing twice frees one slot only
    const third = limiter.admit(1);
    assert.throws(() => limiter.admit(1));
    second();
    third();
  });

  test("0 disables a limit", () => {
    const limiter = new RateLimiter({ perMinute: 0, concurrent: 0 });
    assert.equal(limiter.enabled, false);
    for (let i = 0; i < 10_000; i++) limiter.admit(1);
  });
});

describe("rate limits through the API", () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp("pglite", { rateLimitPerMinute: 5, rateLimitConcurrent: 0 });
  });
  after(() => t?.close());

  test("beyond the limit the licence gets 429 with Retry-After; public routes are not counted", async () => {
    const statuses: number[] = [];
    let limited;
    for (let i = 0; i < 8; i++) {
      const res = await t.request("GET", "/v4/entity");
      statuses.push(res.statusCode);
      if (res.statusCode === 429) limited = res;
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert.ok(limited);
    assert.equal(limited.json().code, "HERALD_RATE_LIMITED");
    assert.ok(Number(limited.headers["retry-after"]) >= 1);
    assert.equal((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
  });
});

describe("concurrency limit through the API", () => {
  test("a second request while one is in progress gets 429; afterwards it passes", async () => {
    const database = await createTestDatabase("pglite");
    await bootstrap(database.db, { defaultEntity: "acme", adminApiKey: TEST_ADMIN_KEY });
    const app = await buildApp({
      db: database.db,
      config: { ...loadConfig({ env: {} }), rateLimitConcurrent: 1 },
      logger: createLogger("silent"),
    });
    // Holds the first request inside its handler until the test lets it go.
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstEntered!: () => void;
    const entered = new Promise<void>((resolve) => (firstEntered = resolve));
    app.addHook("preHandler", async (request) => {
      if (request.headers["x-hold"]) {
        firstEntered();
        await firstHolds;
      }
    });
    try {
      const token = (
        await app.inject({
          method: "GET",
          url: "/auth/token",
          headers: { authorization: TEST_ADMIN_KEY },
        })
      ).json().accessToken as string;
      const call = (headers: Record<string, string> = {}) =>
        app.inject({
          method: "GET",
          url: "/v4/entity",
          headers: { authorization: `Bearer ${token}`, ...headers },
        });
      const first = call({ "x-hold": "1" });
      await entered;
      const second = await call();
      assert.equal(second.statusCode, 429);
      assert.equal(second.headers["retry-after"], "1");
      releaseFirst();
      assert.equal((await first).statusCode, 200);
      assert.equal((await call()).statusCode, 200, "the slot was released");
      const failing = await app.inject({
        method: "GET",
        url: "/v4/entity/nowhere",
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(failing.statusCode, 404);
      assert.equal((await call()).statusCode, 200, "an error answer releases its slot too");
    } finally {
      await app.close();
      await database.drop();
    }
  });
});
