/**
 * Housekeeping on both backends: old attempts, expired tokens and finished replays go; old change
 * events go only at or below the live floor (every subscription's watermark, every open replay's
 * cursor); recent rows and unstamped inbox rows always stay; batches; one process at a time.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { bootstrap } from "../../src/api/bootstrap.js";
import type { Housekeeping } from "../../src/jobs/housekeeping.js";
import { startHousekeeping } from "../../src/jobs/housekeeping.js";
import { createLogger } from "../../src/logger.js";
import type { Database } from "../../src/storage/database.js";
import { ADVISORY_LOCKS } from "../../src/storage/database.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const NOW = new Date("2026-11-30T12:00:00Z");
const OLD = "2026-11-20T12:00:00Z"; // 10 days before NOW: past a 7-day retention
const RECENT = "2026-11-30T11:00:00Z";

async function positions(db: Database): Promise<number[]> {
  const { rows } = await db.query<{ position: number }>(
    "SELECT position FROM change_events WHERE position IS NOT NULL ORDER BY position",
  );
  return rows.map((r) => r.position);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function count(db: Database, sql: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`);
  return rows[0]!.n;
}

for (const { backend, skip } of await testBackends()) {
  describe(`housekeeping (${backend})`, { skip }, () => {
    let database: TestDatabase;
    let db: Database;
    let housekeeping: Housekeeping;
    let subA: number;
    let subB: number;

    const addSubscription = async (entity: number, watermark: number) => {
      const { rows } = await db.query<{ id: number }>(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret, watermark)
         VALUES ($1, 'PROFILE_TABLE', '1', 'CREATE', 'https://example.com/hook', 'whsec_x', $2) RETURNING id`,
        [entity, watermark],
      );
      return rows[0]!.id;
    };

    before(async () => {
      database = await createTestDatabase(backend);
      db = database.db;
      await bootstrap(db, {
        defaultEntity: "acme",
        adminApiKey: "hk_housekeeping_test_key_0123456789",
      });
      const { rows } = await db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = 'acme'",
      );
      const entity = rows[0]!.id;
      // Positions 1..60 are old, 61..100 recent; one old inbox row is not stamped yet.
      await db.query(
        `INSERT INTO change_events (entity_id, source, source_id, event_type, record_key, position, occurred_at)
         SELECT $1, 'PROFILE_TABLE', '1', 'CREATE', p::text, p,
                CASE WHEN p <= 60 THEN $2::timestamptz ELSE $3::timestamptz END
           FROM generate_series(1, 100) AS p`,
        [entity, OLD, RECENT],
      );
      await db.query(
        `INSERT INTO change_events (entity_id, source, source_id, event_type, record_key, occurred_at)
         VALUES ($1, 'PROFILE_TABLE', '1', 'CREATE', 'unstamped', $2)`,
        [entity, OLD],
      );
      await db.query("UPDATE log_head SET position = 100");
      subA = await addSubscription(entity, 40);
      subB = await addSubscription(entity, 90);
      await db.query(
        `INSERT INTO subscription_replays (subscription_id, from_position, to_position, cursor)
         VALUES ($1, 31, 100, 30)`,
        [subB],
      );
      // 23 old attempts and 2 recent ones.
      await db.query(
        `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
           last_position, attempted_at, duration_ms, outcome, worker_id)
         SELECT $1, gen_random_uuid(), 1, ARRAY[n], n, n,
                CASE WHEN n <= 23 THEN $2::timestamptz ELSE $3::timestamptz END, 5, 'DELIVERED', 'w'
           FROM generate_series(1, 25) AS n`,
        [subB, OLD, RECENT],
      );
      const key = await db.query<{ id: number }>("SELECT id FROM api_keys LIMIT 1");
      await db.query(
        `INSERT INTO access_tokens (token_hash, api_key_id, jti, expires_at)
         VALUES ('expired-1', $1, gen_random_uuid(), $2), ('expired-2', $1, gen_random_uuid(), $2),
                ('live', $1, gen_random_uuid(), $3::timestamptz + interval '1 hour')`,
        [key.rows[0]!.id, OLD, NOW],
      );
      housekeeping = await startHousekeeping({
        db,
        logger: createLogger("silent"),
        config: { retentionDays: 7 },
        intervalMs: 3_600_000,
        firstRunDelayMs: 3_600_000,
        now: () => NOW,
        batchSize: 7,
      });
    });
    after(async () => {
      await housekeeping?.stop();
      await database?.drop();
    });

    test("prunes old rows, never at or above the lowest live cursor (an open replay's here)", async () => {
      const report = await housekeeping.runOnce();
      assert.deepEqual(report, {
        expiredSubscriptions: 0,
        deliveryAttempts: 23,
        changeEvents: 30,
        accessTokens: 2,
        replays: 0,
        storedFiles: 0,
        logFloor: 30,
      });
      assert.deepEqual(await positions(db), range(31, 100));
      assert.equal(await count(db, "change_events WHERE position IS NULL"), 1);
      assert.equal(await count(db, "delivery_attempts"), 2);
      assert.deepEqual(
        (await db.query<{ token_hash: string }>("SELECT token_hash FROM access_tokens")).rows.map(
          (r) => r.token_hash,
        ),
        ["live"],
      );
    });

    test("a second run finds nothing more (idempotent)", async () => {
      const report = await housekeeping.runOnce();
      assert.equal(report!.changeEvents + report!.deliveryAttempts + report!.accessTokens, 0);
      assert.deepEqual(await positions(db), range(31, 100));
    });

    test("once the replay finished, the floor is the lowest watermark; the finished replay goes too", async () => {
      await db.query(
        "UPDATE subscription_replays SET status = 'DONE', cursor = to_position, finished_at = $1",
        [OLD],
      );
      const report = await housekeeping.runOnce();
      assert.equal(report!.logFloor, 40);
      assert.equal(report!.changeEvents, 10);
      assert.equal(report!.replays, 1);
      assert.deepEqual(await positions(db), range(41, 100));
    });

    test("a disabled subscription still holds the log at its watermark; deleting it releases it", async () => {
      await db.query(
        "UPDATE webhook_subscriptions SET is_active = false, state = 'DISABLED' WHERE id = $1",
        [subA],
      );
      assert.equal((await housekeeping.runOnce())!.changeEvents, 0);
      await db.query("DELETE FROM webhook_subscriptions WHERE id = $1", [subA]);
      const report = await housekeeping.runOnce();
      assert.equal(report!.logFloor, 90);
      assert.equal(report!.changeEvents, 20, "positions 41..60 were old; 61..90 are recent");
      assert.deepEqual(await positions(db), range(61, 100));
    });

    test("a parked event holds the log below it, though the watermark passed it", async () => {
      await db.query(
        `INSERT INTO parked_records (subscription_id, record_key, push_id, head_last_position, attempts,
                                     next_attempt_at, parked_at)
         VALUES ($1, 'r', gen_random_uuid(), 70, 2, $2, $2)`,
        [subB, NOW],
      );
      await db.query(
        "INSERT INTO parked_events (subscription_id, record_key, position) VALUES ($1, 'r', 70)",
        [subB],
      );
      assert.equal((await housekeeping.runOnce())!.logFloor, 69);
      await db.query("DELETE FROM parked_records WHERE subscription_id = $1", [subB]);
      assert.equal((await housekeeping.runOnce())!.logFloor, 90);
    });

    test("a subscription disabled because its table was deleted holds nothing back (TABLE_DELETED)", async () => {
      const { rows } = await db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = 'acme'",
      );
      const gone = await addSubscription(rows[0]!.id, 65);
      await db.query(
        `INSERT INTO subscription_replays (subscription_id, from_position, to_position, cursor)
         VALUES ($1, 63, 100, 62)`,
        [gone],
      );
      await db.query(
        `INSERT INTO parked_records (subscription_id, record_key, push_id, head_last_position, attempts,
                                     next_attempt_at, parked_at)
         VALUES ($1, 'r', gen_random_uuid(), 64, 2, $2, $2)`,
        [gone, NOW],
      );
      await db.query(
        "INSERT INTO parked_events (subscription_id, record_key, position) VALUES ($1, 'r', 64)",
        [gone],
      );
      // Disabled for another reason (or paused), it holds the log at its lowest position.
      await db.query(
        "UPDATE webhook_subscriptions SET is_active = false, state = 'DISABLED' WHERE id = $1",
        [gone],
      );
      assert.equal((await housekeeping.runOnce())!.logFloor, 62);
      await db.query(
        "UPDATE webhook_subscriptions SET state_reason = 'TABLE_DELETED' WHERE id = $1",
        [gone],
      );
      assert.equal((await housekeeping.runOnce())!.logFloor, 90);
      // Pointed at a live table since (paused, its reason kept), it resumes there: it holds again.
      await db.query(
        `INSERT INTO data_tables (id, entity_id, kind, name, definition)
         VALUES ('1', $1, 'PROFILE_TABLE', 'Revived', '{}')`,
        [rows[0]!.id],
      );
      assert.equal((await housekeeping.runOnce())!.logFloor, 62);
      await db.query("DELETE FROM data_tables WHERE id = '1'");
      await db.query("DELETE FROM webhook_subscriptions WHERE id = $1", [gone]);
    });

    test("with no subscription at all, recent events and unstamped ones still stay", async () => {
      await db.query("DELETE FROM webhook_subscriptions WHERE id = $1", [subB]);
      const report = await housekeeping.runOnce();
      assert.equal(report!.logFloor, 100);
      assert.equal(report!.changeEvents, 0);
      assert.deepEqual(await positions(db), range(61, 100));
      assert.equal(await count(db, "change_events WHERE position IS NULL"), 1);
    });

    test("removes expired files and abandoned uploads, never a file an unfinished import reads", async () => {
      const { rows } = await db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = 'acme'",
      );
      const entity = rows[0]!.id;
      const file = async (name: string, expires: string, complete = true, created = "now()") => {
        const { rows: made } = await db.query<{ id: string }>(
          `INSERT INTO stored_files (id, entity_id, name, complete, expires_at, created_at, sha256)
           VALUES (gen_random_uuid(), $1, $2, $3, now() + $4::interval, ${created}, 'x') RETURNING id`,
          [entity, name, complete, expires],
        );
        await db.query(
          "INSERT INTO stored_file_chunks (file_id, seq, start_offset, data) VALUES ($1, 0, 0, '\\x00')",
          [made[0]!.id],
        );
        return made[0]!.id;
      };
      const expired = await file("expired", "-1 hour");
      const reading = await file("reading", "-1 hour");
      const kept = await file("kept", "1 day");
      const abandoned = await file("abandoned", "1 day", false, "now() - interval '2 days'");
      await db.query(
        `INSERT INTO etl_executions (entity_id, definition, table_id, file_id, file_name, file_bytes,
           file_sha256, status)
         VALUES ($1, '{}', '1', $2, 'reading', 1, 'x', 'RUNNING')`,
        [entity, reading],
      );
      const report = await housekeeping.runOnce();
      assert.equal(report?.storedFiles, 2);
      const left = await db.query<{ id: string }>("SELECT id FROM stored_files ORDER BY name");
      assert.deepEqual(left.rows.map((r) => r.id).sort(), [kept, reading].sort());
      assert.equal(
        await count(db, `stored_file_chunks WHERE file_id IN ('${expired}', '${abandoned}')`),
        0,
      );
      await db.query("DELETE FROM etl_executions");
      await db.query("DELETE FROM stored_files");
    });

    test("skips a run while another process holds the housekeeping lock", async () => {
      const lock = await db.tryAdvisoryLock(ADVISORY_LOCKS.housekeeping);
      assert.ok(lock);
      try {
        assert.equal(await housekeeping.runOnce(), undefined);
      } finally {
        await lock.release();
      }
      assert.notEqual(await housekeeping.runOnce(), undefined);
    });
  });
}
