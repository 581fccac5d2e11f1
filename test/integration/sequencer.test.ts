import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { renderMetrics } from "../../src/metrics.js";
import type { Sequencer, SequencerOptions } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { NewChangeEvent } from "../../src/domain/change-event.js";
import {
  appendChangeEvents,
  LOG_CHANNEL,
  readLog,
  readLogHead,
} from "../../src/storage/change-event-repository.js";
import type { Database } from "../../src/storage/database.js";
import { ADVISORY_LOCKS } from "../../src/storage/database.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const logger = createLogger("silent");

function newEvent(recordKey: string, version: number): NewChangeEvent {
  return {
    entityId: 1,
    source: "PROFILE_TABLE",
    sourceId: "1",
    eventType: version === 1 ? "CREATE" : "UPDATE",
    recordKey,
    keys: { profileId: Number(recordKey) },
    state: { profileId: Number(recordKey), n: version },
    fields: ["n"],
    previous: {},
    extra: {},
    version,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
  };
}

async function append(
  database: Pick<TestDatabase, "db" | "logSignals">,
  events: NewChangeEvent[],
): Promise<void> {
  await database.db.transaction((tx) => appendChangeEvents(tx, events, database.logSignals));
}

/** Waits (bounded) until the log head reaches `target`; LOG_CHANNEL wakes it, a 200 ms re-check backs it up. */
async function waitForHead(db: Database, target: number, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let wake: (() => void) | undefined;
  const unlisten = await db.listen(LOG_CHANNEL, () => wake?.());
  try {
    for (;;) {
      const head = await readLogHead(db);
      if (head >= target) return head;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`log head stayed at ${head}, expected ${target}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.min(left, 200));
      });
    }
  } finally {
    await unlisten();
  }
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const { backend, skip } of await testBackends()) {
  describe(`sequencer on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    const running: Sequencer[] = [];
    const start = async (options: Partial<SequencerOptions> & { db?: Database } = {}) => {
      // A sequencer on a pool of its own is another process's: signals of its own.
      const logSignals = options.db ? new LogSignals() : t.logSignals;
      const sequencer = await startSequencer({ db: t.db, logSignals, logger, ...options });
      running.push(sequencer);
      return sequencer;
    };
    before(async () => {
      t = await createTestDatabase(backend);
    });
    afterEach(async () => {
      for (const sequencer of running.splice(0)) await sequencer.stop();
    });
    after(() => t?.drop());

    test("stamps committed events densely, in insertion order, and skips rolled-back ones", async () => {
      const base = await readLogHead(t.db);
      await append(t, [newEvent("1", 1), newEvent("2", 1)]);
      await assert.rejects(
        t.db.transaction(async (tx) => {
          await appendChangeEvents(tx, [newEvent("3", 1)], t.logSignals);
          throw new Error("roll back");
        }),
      );
      await append(t, [newEvent("1", 2)]);
      await append(t, [newEvent("2", 2), newEvent("1", 3)]);
      const sequencer = await start({ batchSize: 2 });
      await waitForHead(t.db, base + 5);
      const events = await readLog(t.db, base, 100);
      assert.deepEqual(
        events.map((e) => e.position),
        [1, 2, 3, 4, 5].map((n) => base + n),
      );
      assert.deepEqual(
        events.map((e) => `${e.recordKey}@${e.version}`),
        ["1@1", "2@1", "1@2", "2@2", "1@3"],
      );
      const ids = events.map((e) => e.id);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      );
      assert.equal(sequencer.isLeader(), true);
      assert.equal(sequencer.stats().head, base + 5);
      assert.equal(await readLogHead(t.db), base + 5);
      const { body } = await renderMetrics();
      assert.match(body, new RegExp(`^herald_log_head\\{[^}]*\\} ${base + 5}$`, "m"));
      assert.match(body, /^herald_sequencer_leader\{[^}]*\} 1$/m);
    });

    test("a commit wakes the leader at once, long before its poll", async () => {
      await start({ pollMs: 60_000 });
      const base = await readLogHead(t.db);
      // Let the sequencer finish its first round and go to sleep.
      await new Promise((r) => setTimeout(r, 100));
      const began = Date.now();
      await append(t, [newEvent("10", 1)]);
      await waitForHead(t.db, base + 1, 2000);
      assert.ok(Date.now() - began < 1000, `took ${Date.now() - began} ms`);
    });

    test("the safety-net poll stamps events whose notification never came", async () => {
      await start({ pollMs: 100 });
      const base = await readLogHead(t.db);
      await new Promise((r) => setTimeout(r, 50));
      // Inserted without appendChangeEvents, so no NOTIFY is sent.
      await t.db.query(
        `INSERT INTO change_events (entity_id, source, source_id, event_type, record_key)
         VALUES (1, 'PROFILE_TABLE', '1', 'CREATE', '20')`,
      );
      await waitForHead(t.db, base + 1, 3000);
    });

    test("busy mode: right after stamping, an event without a NOTIFY is picked up in ms", async () => {
      // Writers skip the NOTIFY when their process sent one a moment ago; busy mode covers that.
      await start({ pollMs: 60_000, busyLingerMs: 5_000 });
      const base = await readLogHead(t.db);
      await new Promise((r) => setTimeout(r, 50));
      await append(t, [newEvent("15", 1)]);
      await waitForHead(t.db, base + 1, 2000);
      const began = Date.now();
      await t.db.query(
        `INSERT INTO change_events (entity_id, source, source_id, event_type, record_key)
         VALUES (1, 'PROFILE_TABLE', '1', 'UPDATE', '15')`,
      );
      await waitForHead(t.db, base + 2, 2000);
      assert.ok(Date.now() - began < 1000, `took ${Date.now() - began} ms`);
    });

    test("a second sequencer follows, then takes over when the leader stops", async () => {
      const leader = await start();
      await waitUntil("a leader", () => leader.isLeader());
      const follower = await start({ followerRetryMs: 50 });
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(follower.isLeader(), false);
      const base = await readLogHead(t.db);
      await leader.stop();
      await waitUntil("the follower to lead", () => follower.isLeader());
      await append(t, [newEvent("30", 1), newEvent("31", 1)]);
      await waitForHead(t.db, base + 2);
    });

    test("overlapping stampers never reuse or skip a position", async () => {
      const base = await readLogHead(t.db);
      for (let i = 0; i < 20; i++) await append(t, [newEvent(String(100 + i), 1)]);
      const other = backend === "postgres" ? await t.connect(4) : t.db;
      const results = await Promise.all([
        stampPendingEvents(t.db, 3),
        stampPendingEvents(other, 3),
        stampPendingEvents(t.db, 3),
        stampPendingEvents(other, 50),
      ]);
      assert.equal(
        results.reduce((sum, r) => sum + r.stamped, 0),
        20,
      );
      const events = await readLog(t.db, base, 100);
      assert.deepEqual(
        events.map((e) => e.position),
        Array.from({ length: 20 }, (_, i) => base + i + 1),
      );
      assert.equal(await readLogHead(t.db), base + 20);
    });

    test("each round that stamped tells this process's workers the new head", async () => {
      const heads: number[] = [];
      const stopListening = t.logSignals.onLogStamped((head) => heads.push(head));
      try {
        await start({ pollMs: 60_000 });
        const base = await readLogHead(t.db);
        await append(t, [newEvent("50", 1), newEvent("51", 1)]);
        await waitUntil("the head to be announced", () => heads.includes(base + 2));
        // Announced once committed: a read at once sees it.
        assert.equal(await readLogHead(t.db), base + 2);
      } finally {
        stopListening();
      }
    });

    test("a small round hands its events over with its head; a large one only the head", async () => {
      const announced: { head: number; positions?: number[] }[] = [];
      const stopListening = t.logSignals.onLogStamped((head, stamped) =>
        announced.push({
          head,
          positions: stamped && [stamped.after, ...stamped.events.map((e) => e.position)],
        }),
      );
      try {
        const sequencer = await start({ pollMs: 60_000, handOffEvents: 3 });
        const base = await readLogHead(t.db);
        await append(t, [newEvent("80", 1), newEvent("81", 1)]);
        await waitUntil("the head to be announced", () => sequencer.stats().head >= base + 2);
        await append(t, [
          newEvent("82", 1),
          newEvent("83", 1),
          newEvent("84", 1),
          newEvent("85", 1),
        ]);
        await waitUntil("the head to be announced", () => sequencer.stats().head >= base + 6);
        assert.deepEqual(announced, [
          { head: base + 2, positions: [base, base + 1, base + 2] },
          { head: base + 6, positions: undefined },
        ]);
      } finally {
        stopListening();
      }
    });

    if (backend === "postgres") {
      test("a commit announced in-process wakes the leader without a NOTIFY or a poll", async () => {
        await start({ pollMs: 60_000, busyLingerMs: 50 });
        const base = await readLogHead(t.db);
        // Past busy mode: only a wake-up or the 60 s poll starts a round now.
        await new Promise((r) => setTimeout(r, 300));
        await t.db.query(
          `INSERT INTO change_events (entity_id, source, source_id, event_type, record_key)
           VALUES (1, 'PROFILE_TABLE', '1', 'CREATE', '60')`,
        );
        const began = Date.now();
        t.logSignals.inboxCommitted();
        await waitForHead(t.db, base + 1, 2000);
        assert.ok(Date.now() - began < 1000, `took ${Date.now() - began} ms`);
      });

      test("a round that waited for the stamp lock and finds nothing left writes nothing", async () => {
        await append(t, [newEvent("70", 1)]);
        const holder = await t.connect(1);
        const waiter = await t.connect(1);
        try {
          // Another stamper holds the stamp lock and stamps the event meanwhile.
          let release!: () => void;
          const holding = holder.transaction(async (tx) => {
            await tx.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.sequencerStamp]);
            await new Promise<void>((resolve) => (release = resolve));
            await stampPendingEvents(tx, 100);
          });
          await new Promise((r) => setTimeout(r, 50));
          // This round sees the event waiting, so it queues for the lock.
          const queued = waiter.transaction(async (tx) => {
            const result = await stampPendingEvents(tx, 100);
            const { rows } = await tx.query<{ xid: string | null }>(
              "SELECT pg_current_xact_id_if_assigned()::text AS xid",
            );
            return { result, xid: rows[0]?.xid ?? null };
          });
          await new Promise((r) => setTimeout(r, 100));
          release();
          await holding;
          const { result, xid } = await queued;
          assert.equal(result.stamped, 0);
          assert.equal(result.head, await readLogHead(t.db));
          // No transaction id: it locked no row and wrote nothing, so its commit flushes no WAL.
          assert.equal(xid, null);
        } finally {
          await holder.close();
          await waiter.close();
        }
      });

      test("when the leader's process dies, a sequencer in another pool takes over", async () => {
        // The leader's "process": its own pool, behind a switch that makes every call fail once
        // the process is dead (a dead process neither stamps nor asks for the lock again).
        const pool = await t.connect(4);
        let dead = false;
        const leaderDb = new Proxy(pool, {
          get(target, property, receiver) {
            const value = Reflect.get(target, property, receiver) as unknown;
            if (typeof value !== "function") return value;
            return (...args: unknown[]) =>
              dead
                ? Promise.reject(new Error("the process is dead"))
                : (value as (...a: unknown[]) => unknown).apply(target, args);
          },
        });
        const followerDb = await t.connect(4);
        const leader = await start({ db: leaderDb, errorBackoffMs: 50 });
        await waitUntil("a leader", () => leader.isLeader());
        const follower = await start({ db: followerDb, followerRetryMs: 100 });
        await new Promise((r) => setTimeout(r, 250));
        assert.equal(follower.isLeader(), false);

        // The process dies: it can do nothing more, and its lock session goes with it.
        dead = true;
        const { rows } = await t.db.query<{ pid: number }>(
          `SELECT pid FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = $1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [ADVISORY_LOCKS.sequencerLeader],
        );
        assert.equal(rows.length, 1);
        await t.db.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);

        await waitUntil("the leader to notice", () => !leader.isLeader());
        await waitUntil("the follower to lead", () => follower.isLeader(), 5000);
        const base = await readLogHead(t.db);
        await append(t, [newEvent("40", 1)]);
        await waitForHead(t.db, base + 1, 3000);
      });
    }
  });
}
