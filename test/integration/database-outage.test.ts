/**
 * The PostgreSQL adapter when the database goes away (issue #19), in-process, through a TCP proxy
 * the test controls: a connection that dies in the middle of a transaction, an advisory lock's
 * connection, the LISTEN connection, a black hole, the API's answers and the wait at the start.
 * A connection error that reached no listener would end this test process; every case here would
 * then fail. PostgreSQL only (the embedded database runs in-process and cannot go away).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { bootstrap } from "../../src/api/bootstrap.js";
import { buildApp } from "../../src/api/app.js";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/logger.js";
import { DatabaseUnavailable } from "../../src/storage/database-unavailable.js";
import type { DatabaseWait } from "../../src/storage/open-database.js";
import { openDatabase } from "../../src/storage/open-database.js";
import type { AvailabilityChange } from "../../src/storage/postgres-database.js";
import { PostgresDatabase } from "../../src/storage/postgres-database.js";
import type { TcpProxy } from "../helpers/tcp-proxy.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { ADMIN_URL, createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING database outage tests: ${unavailable}`);

const ADMIN_KEY = "hk_outage_tests_admin_key_0123456789";
const target = (() => {
  const url = new URL(ADMIN_URL);
  return { host: url.hostname || "127.0.0.1", port: Number(url.port || 5432) };
})();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe(
  "the PostgreSQL adapter when the database goes away",
  { skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false },
  () => {
    let t: TestDatabase;
    let proxy: TcpProxy;
    let db: PostgresDatabase;
    const changes: AvailabilityChange[] = [];
    before(async () => {
      t = await createTestDatabase("postgres");
      proxy = await startTcpProxy(target);
      db = new PostgresDatabase({
        connectionString: proxy.urlFor(t.url!),
        maxConnections: 4,
        // Short limits, so that a black hole costs this test a second, not 15.
        timeLimits: { connectMs: 500, queryMs: 1_000, pingMs: 300, probeEveryMs: 300 },
        onAvailabilityChange: (change) => changes.push(change),
      });
    });
    after(async () => {
      await db?.close().catch(() => {});
      await proxy?.close();
      await t?.drop();
    });

    test("a connection cut in the middle of a transaction fails that transaction (503-worthy), rolls it back, and the next one works once the database is back", async () => {
      changes.length = 0;
      await db.query("CREATE TABLE IF NOT EXISTS outage_probe (n int)");
      const failed = db.transaction(async (tx) => {
        await tx.query("INSERT INTO outage_probe VALUES (1)");
        proxy.cut();
        // The connection dies while no statement runs on it: the driver emits `error` on the
        // client, which ended the process when nothing listened.
        await sleep(100);
        await tx.query("INSERT INTO outage_probe VALUES (2)");
      });
      const error = await failed.then(
        () => assert.fail("the transaction should have failed"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof DatabaseUnavailable, String(error));
      assert.match(
        error.message,
        /^the database at 127\.0\.0\.1:\d+\/herald_t_\w+ is not available/,
      );
      await assert.rejects(db.query("SELECT 1"), DatabaseUnavailable);
      proxy.restore();
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outage_probe");
      assert.equal(rows[0]!.n, 0, "the cut transaction was rolled back");
      await db.transaction((tx) => tx.query("INSERT INTO outage_probe VALUES (3)"));
      assert.deepEqual(
        changes.map((c) => c.available),
        [false, true],
        "told once that it went, once that it came back",
      );
    });

    test("a black hole: a statement fails after the time limit; then one at a time (per probeEveryMs) waits and the others fail at once; the first answer ends it", async () => {
      await db.query("SELECT 1");
      proxy.blackHole();
      try {
        const startedAt = Date.now();
        const first = db.query("SELECT 1").then(
          () => undefined,
          (e: unknown) => e,
        );
        const firstError = await first;
        const waited = Date.now() - startedAt;
        assert.ok(firstError instanceof DatabaseUnavailable, String(firstError));
        assert.ok(waited >= 400 && waited < 5_000, `the first waited ${waited} ms`);
        // The database has not answered in time: one probe at a time, the others fail at once.
        const probe = db.query("SELECT 1").catch((e: unknown) => e);
        const quickAt = Date.now();
        const quick = await db.transaction((tx) => tx.query("SELECT 2")).catch((e: unknown) => e);
        assert.ok(quick instanceof DatabaseUnavailable, String(quick));
        assert.match(quick.message, /no answer for \d+ s/);
        assert.ok(Date.now() - quickAt < 200, "failed at once");
        assert.ok((await probe) instanceof DatabaseUnavailable);
      } finally {
        proxy.restore();
      }
      await db.query("SELECT 1");
      await db.transaction((tx) => tx.query("SELECT 2"));
    });

    test("an advisory lock reports its loss when its connection is cut; asking for one during the cut throws instead of crashing", async () => {
      const lock = await db.tryAdvisoryLock(72_639_001);
      assert.ok(lock);
      proxy.cut();
      try {
        const reason = await Promise.race([lock.lost, sleep(5_000).then(() => "not lost")]);
        assert.ok(reason instanceof Error, `lost settles: ${String(reason)}`);
        await assert.rejects(db.tryAdvisoryLock(72_639_001), DatabaseUnavailable);
        await lock.release().catch(() => {});
      } finally {
        proxy.restore();
      }
      // The server let the lock go with its session: it can be taken again.
      const again = await db.tryAdvisoryLock(72_639_001);
      assert.ok(again, "the lock is free again");
      await again.release();
    });

    test("an advisory lock whose connection goes silent (black hole) is reported lost by its ping", async () => {
      const lock = await db.tryAdvisoryLock(72_639_002);
      assert.ok(lock);
      proxy.blackHole();
      try {
        const reason = await Promise.race([lock.lost, sleep(5_000).then(() => "not lost")]);
        assert.ok(reason instanceof Error, `lost settles: ${String(reason)}`);
      } finally {
        proxy.restore();
        await lock.release().catch(() => {});
      }
    });

    test("LISTEN comes back after a cut: every listener is woken (notifications may have been missed) and hears the next ones; a listen() made during the cut subscribes once the database is back", async () => {
      const heard: string[] = [];
      const late: string[] = [];
      const unlisten = await db.listen("herald_outage_a", (payload) => heard.push(payload));
      await db.query("SELECT pg_notify('herald_outage_a', 'before')");
      await eventually(() => heard.includes("before"), 5_000, "the first notification");
      proxy.cut();
      let unlistenLate: (() => Promise<void>) | undefined;
      try {
        await sleep(200);
        unlistenLate = await db.listen("herald_outage_b", (payload) => late.push(payload));
      } finally {
        proxy.restore();
      }
      await eventually(
        () => heard.includes("") && late.includes(""),
        5_000,
        "the wake-up after reconnecting",
      );
      await db.query("SELECT pg_notify('herald_outage_a', 'after')");
      await db.query("SELECT pg_notify('herald_outage_b', 'late')");
      await eventually(
        () => heard.includes("after") && late.includes("late"),
        5_000,
        "notifications after reconnecting",
      );
      await unlisten();
      await unlistenLate?.();
    });

    test("the API answers 503 HERALD_DATABASE_UNAVAILABLE with Retry-After during a cut, /readyz 503, and both 200 after", async () => {
      await bootstrap(db, { defaultEntity: "acme", adminApiKey: ADMIN_KEY });
      const app = await buildApp({
        db,
        config: { ...loadConfig({ env: {} }), defaultEntity: "acme" },
        logger: createLogger("silent"),
      });
      try {
        const token = (
          await app.inject({
            method: "GET",
            url: "/auth/token",
            headers: { authorization: ADMIN_KEY },
          })
        ).json<{ accessToken: string }>().accessToken;
        const get = () =>
          app.inject({
            method: "GET",
            url: "/v5/entities/acme/profile-tables",
            headers: { authorization: `Bearer ${token}` },
          });
        assert.equal((await get()).statusCode, 200);
        proxy.cut();
        try {
          const during = await get();
          assert.equal(during.statusCode, 503, during.body);
          assert.equal(during.headers["retry-after"], "2");
          const body = during.json<Record<string, unknown>>();
          assert.deepEqual(Object.keys(body).sort(), ["code", "details", "message", "status"]);
          assert.equal(body.code, "HERALD_DATABASE_UNAVAILABLE");
          assert.equal(body.status, 503);
          assert.match(
            String(body.message),
            /^The database is not available right now: .+\. Retry after 2 s$/,
          );
          assert.doesNotMatch(
            String(body.message),
            /127\.0\.0\.1|herald_t_/,
            "no address in the answer",
          );
          const ready = await app.inject({ method: "GET", url: "/readyz" });
          assert.equal(ready.statusCode, 503);
          assert.equal(ready.headers["retry-after"], "2");
          assert.match(ready.json<{ message: string }>().message, /database is unreachable \(/);
        } finally {
          proxy.restore();
        }
        assert.equal((await app.inject({ method: "GET", url: "/readyz" })).statusCode, 200);
        assert.equal((await get()).statusCode, 200);
      } finally {
        await app.close();
      }
    });

    test("the start waits while the database is down, saying why, and opens it once it is up", async () => {
      const waits: DatabaseWait[] = [];
      proxy.cut();
      setTimeout(() => proxy.restore(), 1_500);
      const opened = await openDatabase({
        databaseUrl: proxy.urlFor(t.url!),
        dataDir: "unused",
        onWait: (wait) => waits.push(wait),
      });
      try {
        assert.ok(waits.length >= 1, "it said it was waiting");
        assert.match(
          waits[0]!.message,
          /^the database at 127\.0\.0\.1:\d+\/\w+ is not available: /,
        );
        assert.ok(waits[0]!.retryInMs > 0 && waits[0]!.retryInMs <= 2_000);
        await opened.query("SELECT 1");
      } finally {
        await opened.close();
      }
    });

    test("a start stops at once, saying what to fix, when the server refuses (no such database) rather than being away", async () => {
      const url = new URL(t.url!);
      url.pathname = "/herald_no_such_database";
      const waits: DatabaseWait[] = [];
      const startedAt = Date.now();
      await assert.rejects(
        openDatabase({
          databaseUrl: url.toString(),
          dataDir: "unused",
          onWait: (w) => waits.push(w),
        }),
        /^Error: cannot use the database at .*\/herald_no_such_database: database "herald_no_such_database" does not exist \(SQLSTATE 3D000\)\. Check DATABASE_URL/,
      );
      assert.equal(waits.length, 0, "no waiting");
      assert.ok(Date.now() - startedAt < 5_000);
    });

    test("a start waiting for the database stops when asked (SIGTERM)", async () => {
      proxy.cut();
      const stop = new AbortController();
      setTimeout(() => stop.abort(), 500);
      try {
        await assert.rejects(
          openDatabase({
            databaseUrl: proxy.urlFor(t.url!),
            dataDir: "unused",
            signal: stop.signal,
          }),
          /stopped while waiting for the database/,
        );
      } finally {
        proxy.restore();
      }
    });
  },
);
