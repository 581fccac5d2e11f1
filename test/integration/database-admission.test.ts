/**
 * The door in front of the embedded database, wired into Fastify as buildApp wires it: a request
 * that waited its limit is answered 503 with Retry-After in SPEC §2's shape, a public route never
 * waits, and a finished request frees its place. PGlite only: on PostgreSQL there is no door.
 */
import assert from "node:assert/strict";
import Fastify from "fastify";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { registerDatabaseAdmission } from "../../src/api/database-admission.js";
import { handleError } from "../../src/api/error-handler.js";
import type { Database } from "../../src/storage/database.js";
import { PgliteDatabase } from "../../src/storage/pglite-database.js";

function appWithDoor(db: Database) {
  const app = Fastify();
  app.setErrorHandler(handleError);
  registerDatabaseAdmission(app, db, { maxConcurrent: 1, maxWaitMs: 100, retryAfterSeconds: 1 });
  app.get("/healthz", { config: { public: true } }, async () => ({ status: "ok" }));
  app.get("/count", async () => {
    const result = await db.query<{ n: number }>("SELECT 1 AS n");
    return { n: result.rows[0]!.n };
  });
  return app;
}

describe("database admission on the embedded database", () => {
  let db: PgliteDatabase;
  before(async () => {
    db = await PgliteDatabase.open();
  });
  after(async () => {
    await db.close();
  });

  test(
    "beyond the requests in progress, a request waits, then gets 503 with Retry-After",
    { timeout: 20_000 },
    async () => {
      const app = appWithDoor(db);
      // The session is busy for 400 ms: the first request gets in and waits for it inside.
      let release!: () => void;
      const holding = db.transaction(() => new Promise<void>((resolve) => (release = resolve)));
      const inside = app.inject({ method: "GET", url: "/count" });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const refused = await app.inject({ method: "GET", url: "/count" });
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(refused.headers["retry-after"], "1");
      const body = refused.json() as { status: number; code: string; message: string };
      assert.equal(body.status, 503);
      assert.equal(body.code, "HERALD_DATABASE_BUSY");
      assert.match(body.message, /waited \d+ ms for its turn; retry after 1 s/);
      // A public route never waits at the door.
      const health = await app.inject({ method: "GET", url: "/healthz" });
      assert.equal(health.statusCode, 200);

      release();
      await holding;
      assert.equal((await inside).statusCode, 200);
      // The finished request freed its place: the next one goes in.
      const next = await app.inject({ method: "GET", url: "/count" });
      assert.equal(next.statusCode, 200, next.body);
      await app.close();
    },
  );

  test(
    "a client that went away while waiting at the door gives its place back once let in",
    { timeout: 20_000 },
    async () => {
      const app = Fastify();
      app.setErrorHandler(handleError);
      registerDatabaseAdmission(app, db, {
        maxConcurrent: 1,
        maxWaitMs: 3_000,
        retryAfterSeconds: 1,
      });
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      app.get("/held", async () => {
        await gate;
        return { ok: true };
      });
      app.get("/count", async () => ({
        n: (await db.query<{ n: number }>("SELECT 1 AS n")).rows[0]!.n,
      }));
      await app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = app.server.address() as AddressInfo;
      const base = `http://127.0.0.1:${port}`;
      try {
        const inside = fetch(`${base}/held`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        // A second client waits at the door, then hangs up before its turn comes.
        const leaving = connect(port, "127.0.0.1");
        await new Promise<void>((resolve) => leaving.once("connect", () => resolve()));
        leaving.write("GET /count HTTP/1.1\r\nHost: x\r\n\r\n");
        await new Promise((resolve) => setTimeout(resolve, 100));
        leaving.destroy();
        await new Promise((resolve) => setTimeout(resolve, 100));
        open();
        assert.equal((await inside).status, 200);
        // The place it was handed is free again: the next request goes in at once.
        const next = await fetch(`${base}/count`);
        assert.equal(next.status, 200, await next.text());
      } finally {
        await app.close();
      }
    },
  );

  test("an adapter without one queue for everything (PostgreSQL) gets no door", async () => {
    // The same session seen through an adapter that has no such queue, as the pg pool's.
    const withoutQueue = {
      query: (sql: string, params?: readonly unknown[]) => db.query(sql, params),
    } as unknown as Database;
    const app = appWithDoor(withoutQueue);
    let release!: () => void;
    const holding = db.transaction(() => new Promise<void>((resolve) => (release = resolve)));
    const first = app.inject({ method: "GET", url: "/count" });
    const second = app.inject({ method: "GET", url: "/count" });
    await new Promise((resolve) => setTimeout(resolve, 250));
    release();
    await holding;
    assert.deepEqual(
      [(await first).statusCode, (await second).statusCode],
      [200, 200],
      "both waited for the database; none was refused",
    );
    await app.close();
  });
});
