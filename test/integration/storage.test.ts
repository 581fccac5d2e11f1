import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { migrate } from "../../src/storage/migrate.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`storage on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(() => t?.drop());

    test("64-bit integers, numerics, timestamps and JSON come back the same on both adapters", async () => {
      const { rows } = await t.db.query<Record<string, unknown>>(
        `SELECT 9007199254740991::bigint AS big, 42::int AS small, 1.50::numeric AS num,
                '2026-01-02T03:04:05.678Z'::timestamptz AS ts, '{"a":[1,"x",true]}'::jsonb AS doc,
                ARRAY[1,2]::bigint[] AS ids, NULL::bigint AS nothing`,
      );
      assert.deepEqual(rows[0], {
        big: 9007199254740991,
        small: 42,
        num: "1.50",
        ts: new Date("2026-01-02T03:04:05.678Z"),
        doc: { a: [1, "x", true] },
        ids: [1, 2],
        nothing: null,
      });
    });

    test("a bigint beyond 2^53 is refused instead of rounded", async () => {
      await assert.rejects(t.db.query("SELECT 9007199254740993::bigint AS big"), /safe integer/);
    });

    test("a transaction that throws leaves nothing behind", async () => {
      await assert.rejects(
        t.db.transaction(async (tx) => {
          await tx.query("INSERT INTO licences (name) VALUES ('rolled-back')");
          throw new Error("boom");
        }),
        /boom/,
      );
      const { rowCount } = await t.db.query("SELECT 1 FROM licences WHERE name = 'rolled-back'");
      assert.equal(rowCount, 0);
    });

    test("migrating again applies nothing; concurrent migrators do not collide", async () => {
      const results = await Promise.all([migrate(t.db), migrate(t.db)]);
      assert.deepEqual(results, [[], []]);
    });

    test("NOTIFY reaches a listener after commit", async () => {
      const received: string[] = [];
      let resolve!: () => void;
      const got = new Promise<void>((r) => (resolve = r));
      const unlisten = await t.db.listen("herald_test_channel", (payload) => {
        received.push(payload);
        resolve();
      });
      await t.db.transaction(async (tx) => {
        await tx.query("SELECT pg_notify('herald_test_channel', 'hello')");
      });
      await got;
      assert.deepEqual(received, ["hello"]);
      await unlisten();
    });

    test("an advisory lock is exclusive until released", async () => {
      const first = await t.db.tryAdvisoryLock(123456);
      assert.ok(first);
      assert.equal(await t.db.tryAdvisoryLock(123456), null);
      await first.release();
      const again = await t.db.tryAdvisoryLock(123456);
      assert.ok(again);
      await again.release();
    });
  });
}
