/**
 * Group commit of profile upserts (capture/profile-upsert.ts, capture/write-batcher.ts): upserts
 * submitted together share statements, yet each one ends exactly as it would alone — its own
 * result or error, its own events exactly once, nothing written for one that fails.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProfileUpserts } from "../../src/capture/profile-upsert.js";
import type { ProfileWriteResult } from "../../src/capture/profile-writer.js";
import { parseProfileInput } from "../../src/capture/profile-writer.js";
import type { DataTable } from "../../src/domain/data-table.js";
import { HeraldError } from "../../src/domain/errors.js";
import { findTable } from "../../src/storage/data-table-repository.js";
import type { Database } from "../../src/storage/database.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const TABLE = {
  name: "Batched",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
  ],
  subscriptions: [{ name: "newsletter" }],
};

interface EventRow {
  id: number;
  event_type: string;
  record_key: string;
  version: number;
  state: Record<string, unknown>;
  fields: string[];
}

/** The same database, counting the statements sent by name (a fresh object: give it its own batcher). */
function countingDatabase(db: Database): { db: Database; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  const counting: Database = {
    kind: db.kind,
    capabilities: db.capabilities,
    query: (sql, params, name) => {
      const key = name ?? "(unnamed)";
      counts.set(key, (counts.get(key) ?? 0) + 1);
      return db.query(sql, params, name);
    },
    exec: (sql) => db.exec(sql),
    transaction: (fn) => db.transaction(fn),
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    tryAdvisoryLock: (key) => db.tryAdvisoryLock(key),
    close: () => db.close(),
  };
  return { db: counting, counts };
}

type Outcome = ProfileWriteResult | { error: string };

for (const { backend, skip } of await testBackends()) {
  describe(`profile upserts group-committed on ${backend}`, { skip }, () => {
    let t: TestApp;
    let table: DataTable;
    /** The upserts of this suite's own calls (the app has its own batcher, as another process would). */
    let upserts: ProfileUpserts;
    const origin = { kind: "SYSTEM" } as const;

    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const count = async (sql: string, params: unknown[] = []) =>
      (await t.database.db.query<{ n: number }>(sql, params)).rows[0]!.n;

    /** Submits upserts in one go (so they batch) and collects each one's result or error code. */
    const upsertAll = (
      through: ProfileUpserts,
      writes: { attributes: { name: string; value: unknown }[]; allowUpdate?: boolean }[],
    ): Promise<Outcome[]> =>
      Promise.all(
        writes.map((w) =>
          through
            .upsert(table, parseProfileInput(table, { attributes: w.attributes }), {
              allowUpdate: w.allowUpdate ?? true,
              origin,
            })
            .catch((error: unknown) => ({
              error: error instanceof HeraldError ? error.code : String(error),
            })),
        ),
      );
    const email = (value: string) => ({ name: "emailAddress", value });

    before(async () => {
      t = await createTestApp(backend);
      upserts = new ProfileUpserts(t.database);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", TABLE);
      assert.equal(created.statusCode, 201, created.body);
      table = (await findTable(t.database.db, 1, "PROFILE_TABLE", String(created.json().id)))!;
    });
    after(() => t?.close());

    test("upserts submitted together share statements: 12 creates, then 12 updates, in far fewer than 12 each", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const { db, counts } = countingDatabase(t.database.db);
      const counted = new ProfileUpserts({ db, logSignals: t.database.logSignals });
      const writes = Array.from({ length: 12 }, (_, i) => ({
        attributes: [email(`batch${i}@example.com`), { name: "firstName", value: `First${i}` }],
      }));
      const created = await upsertAll(counted, writes);
      assert.deepEqual(
        created.map((r) => ("outcome" in r ? r.outcome : r.error)),
        Array(12).fill("CREATED"),
      );
      assert.equal(new Set(created.map((r) => ("profileId" in r ? r.profileId : 0))).size, 12);
      const renamed = writes.map((w, i) => ({
        attributes: [w.attributes[0]!, { name: "firstName", value: `Second${i}` }],
      }));
      const updated = await upsertAll(counted, renamed);
      assert.deepEqual(
        updated.map((r) => ("outcome" in r ? r.outcome : r.error)),
        Array(12).fill("UPDATED"),
      );
      // The same profiles, found by their email.
      assert.deepEqual(
        updated.map((r) => ("profileId" in r ? r.profileId : 0)),
        created.map((r) => ("profileId" in r ? r.profileId : 0)),
      );
      // Per batch one read-only lookup and one write (creates and updates alike).
      const lookups = counts.get("herald_find_records_by_keys") ?? 0;
      const writesSent = counts.get("herald_write_records_with_events") ?? 0;
      assert.ok(lookups >= 2 && lookups <= 4, `batched lookups: ${lookups} statements`);
      assert.ok(
        writesSent >= 2 && writesSent <= lookups,
        `batched writes: ${writesSent} statements`,
      );
      assert.equal(counts.get("herald_create_record_with_events") ?? 0, 0, "nothing ran alone");

      // Events exactly once: per profile a CREATE (version 1) then an UPDATE (version 2) of firstName.
      const rows = await events();
      assert.equal(rows.length, 24);
      for (const result of created) {
        const id = String("profileId" in result ? result.profileId : 0);
        const mine = rows.filter((r) => r.record_key === id);
        assert.deepEqual(
          mine.map((r) => [r.event_type, r.version]),
          [
            ["CREATE", 1],
            ["UPDATE", 2],
          ],
        );
        assert.deepEqual(mine[1]!.fields, ["firstName"]);
        assert.equal(mine[1]!.state.profileId, Number(id));
      }
    });

    test("a no-op in a batch writes no event and keeps the version", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const results = await upsertAll(upserts, [
        { attributes: [email("batch0@example.com"), { name: "firstName", value: "Second0" }] },
        { attributes: [email("batch1@example.com"), { name: "firstName", value: "Third1" }] },
      ]);
      assert.deepEqual(
        results.map((r) => ("outcome" in r ? [r.outcome, r.version] : r.error)),
        [
          ["UNCHANGED", 2],
          ["UPDATED", 3],
        ],
      );
      assert.deepEqual(
        (await events()).map((r) => r.event_type),
        ["UPDATE"],
      );
    });

    test("one taken unique value fails only its own upsert (409, nothing written); the others commit", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const before = await count("SELECT count(*)::integer AS n FROM records");
      const writes = Array.from({ length: 8 }, (_, i) => ({
        attributes: [email(`iso${i}@example.com`)],
        allowUpdate: false,
      }));
      // Without allowUpdate the batch inserts blindly: the taken value fails its statement (23505).
      writes[3] = { attributes: [email("batch2@example.com")], allowUpdate: false };
      const results = await upsertAll(upserts, writes);
      results.forEach((r, i) =>
        assert.deepEqual(
          "outcome" in r ? r.outcome : r.error,
          i === 3 ? "HERALD_UNIQUE_KEY_TAKEN" : "CREATED",
          `upsert ${i}`,
        ),
      );
      assert.equal(await count("SELECT count(*)::integer AS n FROM records"), before + 7);
      const rows = await events();
      assert.equal(rows.length, 7);
      assert.ok(rows.every((r) => r.event_type === "CREATE" && r.version === 1));
      assert.ok(!rows.some((r) => r.state.emailAddress === "batch2@example.com"));
    });

    test("upserts of one new key submitted together: one CREATE, then updates in version order", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const results = await upsertAll(
        upserts,
        Array.from({ length: 5 }, (_, i) => ({
          attributes: [email("same@example.com"), { name: "firstName", value: `Name${i}` }],
        })),
      );
      const outcomes = results.map((r) => ("outcome" in r ? r.outcome : r.error));
      assert.deepEqual(outcomes, ["CREATED", "UPDATED", "UPDATED", "UPDATED", "UPDATED"]);
      assert.equal(new Set(results.map((r) => ("profileId" in r ? r.profileId : 0))).size, 1);
      assert.deepEqual(
        (await events()).map((r) => [r.event_type, r.version]),
        [
          ["CREATE", 1],
          ["UPDATE", 2],
          ["UPDATE", 3],
          ["UPDATE", 4],
          ["UPDATE", 5],
        ],
      );
      // Without allowUpdate, the second of two creates of one new value is 409.
      const strict = await upsertAll(upserts, [
        { attributes: [email("strict@example.com")], allowUpdate: false },
        { attributes: [email("strict@example.com")], allowUpdate: false },
      ]);
      assert.deepEqual(
        strict.map((r) => ("outcome" in r ? r.outcome : r.error)),
        ["CREATED", "HERALD_UNIQUE_KEY_TAKEN"],
      );
    });

    test("two upserts that reach one profile by different unique values both apply, one after the other", async () => {
      const first = await upsertAll(upserts, [
        { attributes: [email("two@example.com"), { name: "customerId", value: "C-2" }] },
      ]);
      const profileId = "profileId" in first[0]! ? first[0].profileId : 0;
      await t.database.db.query("DELETE FROM change_events");
      // No shared key, so both go in one batch, and both find the same profile.
      const results = await upsertAll(upserts, [
        { attributes: [email("two@example.com"), { name: "firstName", value: "ByEmail" }] },
        {
          attributes: [
            { name: "customerId", value: "C-2" },
            { name: "firstName", value: "ById" },
          ],
        },
      ]);
      const applied = results.map((r) => ("outcome" in r ? [r.profileId, r.outcome] : r.error));
      assert.deepEqual(applied, [
        [profileId, "UPDATED"],
        [profileId, "UPDATED"],
      ]);
      const versions = results.map((r) => ("version" in r ? r.version : 0));
      assert.deepEqual([...versions].sort(), [2, 3]);
      // The events follow the versions, each with the state its own write left.
      const rows = await events();
      assert.deepEqual(
        rows.map((r) => [r.event_type, r.version]),
        [
          ["UPDATE", 2],
          ["UPDATE", 3],
        ],
      );
      const byVersion = (v: number) => (versions[0] === v ? "ByEmail" : "ById");
      assert.deepEqual(
        rows.map((r) => r.state.firstName),
        [byVersion(2), byVersion(3)],
      );
    });

    test("many racing upserts over few keys: each profile's events are versions 1..n exactly once, ending in its state", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const keys = 12;
      const writes = Array.from({ length: 240 }, (_, i) => ({
        attributes: [
          email(`race${i % keys}@example.com`),
          // Repeats some values, so that some upserts change nothing.
          { name: "firstName", value: `N${(i * 7) % 5}` },
        ],
      }));
      // Four waves submitted without waiting, through two batchers (a second handle on the same
      // database has its own, like a second API process): keys collide across batches, so some
      // statements fail on a value the other created or find a version the other moved on.
      const other = new ProfileUpserts({
        db: countingDatabase(t.database.db).db,
        logSignals: t.database.logSignals,
      });
      const results = (
        await Promise.all(
          [0, 1, 2, 3].map((w) =>
            upsertAll(w % 2 ? other : upserts, writes.slice(w * 60, w * 60 + 60)),
          ),
        )
      ).flat();
      assert.deepEqual(
        results.filter((r) => !("outcome" in r)),
        [],
        "no upsert failed",
      );
      const written = results.filter((r) => "outcome" in r && r.outcome !== "UNCHANGED").length;
      const rows = await events();
      assert.equal(rows.length, written, "one event per write that changed something");
      const records = await t.database.db.query<{
        record_id: number;
        version: number;
        attributes: Record<string, unknown>;
      }>(
        `SELECT record_id, version, attributes FROM records
          WHERE attributes->>'emailAddress' LIKE 'race%'`,
      );
      assert.equal(records.rows.length, keys);
      for (const record of records.rows) {
        const mine = rows.filter((r) => r.record_key === String(record.record_id));
        assert.deepEqual(
          mine.map((r) => r.version),
          Array.from({ length: record.version }, (_, i) => i + 1),
          `profile ${record.record_id}: versions in order, none missing or repeated`,
        );
        assert.equal(mine[0]!.event_type, "CREATE");
        assert.ok(mine.slice(1).every((r) => r.event_type === "UPDATE"));
        assert.equal(mine.at(-1)!.state.firstName, record.attributes.firstName);
      }
    });

    test("a bad upsert in a batch (no profile to update, mandatory value missing) is its own 400", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const results = await upsertAll(upserts, [
        { attributes: [email("ok1@example.com")] },
        // Only a customerId that nobody holds: nothing to update, and a create lacks the email.
        { attributes: [{ name: "customerId", value: "C-nobody" }] },
        { attributes: [email("ok2@example.com")] },
      ]);
      assert.deepEqual(
        results.map((r) => ("outcome" in r ? r.outcome : r.error)),
        ["CREATED", "HERALD_MISSING_MANDATORY", "CREATED"],
      );
      assert.equal((await events()).length, 2);
      assert.equal(
        await count("SELECT count(*)::integer AS n FROM record_keys WHERE value = $1", [
          "C-nobody",
        ]),
        0,
      );
    });

    test("dataCollectionInformation rides along in a batch; a change of it alone writes it without an event or a version", async () => {
      await t.database.db.query("DELETE FROM change_events");
      const collect = (source: string, name: string, first?: string) =>
        parseProfileInput(table, {
          attributes: [email(name), ...(first ? [{ name: "firstName", value: first }] : [])],
          dataCollectionInformation: { date: "2024-05-01", source, way: "form" },
        });
      const upsert = (write: ReturnType<typeof collect>) =>
        upserts.upsert(table, write, { allowUpdate: true, origin });
      const stored = async (id: number) =>
        (
          await t.database.db.query<{
            data_collection: unknown;
            version: number;
            updated_at: Date;
          }>("SELECT data_collection, version, updated_at FROM records WHERE record_id = $1", [id])
        ).rows[0]!;
      // Two creates and an update together: one batch.
      const [a, b, c] = await Promise.all([
        upsert(collect("web", "dc1@example.com")),
        upsert(collect("shop", "dc2@example.com")),
        upsert(collect("app", "batch5@example.com", "Changed5")),
      ]);
      assert.deepEqual([a.outcome, b.outcome, c.outcome], ["CREATED", "CREATED", "UPDATED"]);
      assert.deepEqual((await stored(a.profileId)).data_collection, {
        date: "2024-05-01",
        source: "web",
        way: "form",
      });
      assert.equal(
        ((await stored(b.profileId)).data_collection as { source: string }).source,
        "shop",
      );
      assert.equal(
        ((await stored(c.profileId)).data_collection as { source: string }).source,
        "app",
      );
      const eventsBefore = (await events()).length;
      assert.equal(eventsBefore, 3);

      // Only the information changes (for one of two upserts batched together): stored, no event.
      const before = await stored(a.profileId);
      const [again, same] = await Promise.all([
        upsert(collect("partner", "dc1@example.com")),
        upsert(collect("shop", "dc2@example.com")),
      ]);
      assert.deepEqual([again.outcome, same.outcome], ["UNCHANGED", "UNCHANGED"]);
      const after = await stored(a.profileId);
      assert.equal((after.data_collection as { source: string }).source, "partner");
      assert.equal(after.version, before.version);
      assert.equal(after.updated_at.getTime(), before.updated_at.getTime());
      assert.equal((await events()).length, eventsBefore);

      // A write without the information keeps the stored one.
      await upsert(
        parseProfileInput(table, {
          attributes: [email("dc1@example.com"), { name: "firstName", value: "Dee" }],
        }),
      );
      assert.equal(
        ((await stored(a.profileId)).data_collection as { source: string }).source,
        "partner",
      );
    });
  });
}
