/**
 * The embedded database's adapter under many concurrent callers (issue #19, defects 3 and 6).
 * PGlite only: these are properties of its single in-process session, which PostgreSQL has not.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PgliteDatabase } from "../../src/storage/pglite-database.js";

describe("embedded database session", () => {
  let db: PgliteDatabase;
  before(async () => {
    db = await PgliteDatabase.open();
  });
  after(async () => {
    await db.close();
  });

  test("many waiting statements do not keep the event loop from other callbacks", async () => {
    const statements = 200;
    let done = 0;
    const all = Array.from({ length: statements }, () =>
      db.query("SELECT count(*) FROM generate_series(1, 20000)").then(() => done++),
    );
    // Before, PGlite handed its session from one statement to the next in promise callbacks: the
    // whole queue ran before any timer or socket callback (this saw all 200 done).
    const seen = await new Promise<number>((resolve) => setImmediate(() => resolve(done)));
    const timerSeen = await new Promise<number>((resolve) => setTimeout(() => resolve(done), 0));
    await Promise.all(all);
    assert.ok(seen < statements / 2, `an immediate ran after ${seen} of ${statements} statements`);
    assert.ok(timerSeen < statements, `a timer ran after ${timerSeen} of ${statements}`);
    assert.equal(done, statements);
  });

  test("transactions and plain statements still take turns: a statement waits for a transaction", async () => {
    await db.exec("CREATE TABLE turns (n int)");
    const order: string[] = [];
    const tx = db.transaction(async (t) => {
      await t.query("INSERT INTO turns VALUES (1)");
      await new Promise((resolve) => setTimeout(resolve, 20));
      await t.query("INSERT INTO turns VALUES (2)");
      order.push("transaction");
    });
    const read = db.query<{ n: number }>("SELECT count(*)::int AS n FROM turns").then((r) => {
      order.push(`read ${r.rows[0]!.n}`);
    });
    await Promise.all([tx, read]);
    assert.deepEqual(order, ["transaction", "read 2"]);
  });
});

describe("embedded database data directory", () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), "herald-embedded-"));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test("a new directory is created (initdb in a child process), then opened again as it is", async () => {
    const first = await PgliteDatabase.open(dataDir);
    assert.ok(existsSync(join(dataDir, "PG_VERSION")));
    await first.exec("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)");
    // 32 MB rather than PostgreSQL's 128 MB default, which is resident from the first second.
    const setting = await first.query<{ shared_buffers: string }>("SHOW shared_buffers");
    assert.equal(setting.rows[0]!.shared_buffers, "32MB");
    await first.close();

    const again = await PgliteDatabase.open(dataDir);
    const kept = await again.query<{ n: number }>("SELECT n FROM kept");
    assert.deepEqual(kept.rows, [{ n: 7 }]);
    await again.close();
  });
});
