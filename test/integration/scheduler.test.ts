/**
 * The scheduler (SPEC §7 "Schedules", DESIGN §6b) on both backends, on a test clock: one run per due
 * time with two schedulers (on PostgreSQL each on its own connection pool, as two worker processes
 * have), a run missed while nothing ran starts once, nothing before its time, saving and removing
 * schedules, a throwing handler, and a time zone across a daylight saving change.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, beforeEach, describe, test } from "node:test";
import pino from "pino";
import type { Schedule } from "../../src/domain/schedule.js";
import type { DueRun, Scheduler, ScheduleHandler } from "../../src/jobs/scheduler.js";
import { startScheduler } from "../../src/jobs/scheduler.js";
import type { Database } from "../../src/storage/database.js";
import { JOBS_CHANNEL } from "../../src/storage/job-channels.js";
import { JobSignals } from "../../src/storage/job-signals.js";
import type { ScheduleKind } from "../../src/storage/schedule-repository.js";
import { nextDueAt, removeSchedule, saveSchedule } from "../../src/storage/schedule-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const MINUTE = 60_000;

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n"))
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

interface RunRow {
  kind: ScheduleKind;
  owner_id: string;
  due_at: Date;
  started_by: string;
}

for (const { backend, skip } of await testBackends()) {
  describe(`scheduler on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    /** A second handle on the same database: another process's pool (PGlite has only one). */
    let other: Database;
    let entityId: number;
    let clock: Date;
    const now = () => clock;
    const schedulers: Scheduler[] = [];

    before(async () => {
      t = await createTestDatabase(backend);
      other = backend === "postgres" ? await t.connect(4) : t.db;
      const licence = await t.db.query<{ id: number }>(
        "INSERT INTO licences (name) VALUES ('scheduler') RETURNING id",
      );
      const entity = await t.db.query<{ id: number }>(
        "INSERT INTO entities (licence_id, name) VALUES ($1, 'acme') RETURNING id",
        [licence.rows[0]!.id],
      );
      entityId = entity.rows[0]!.id;
      // What the handlers create: the job rows of the runs, as parts C and D insert theirs.
      await t.db.exec(`CREATE TABLE scheduled_runs (
        id serial PRIMARY KEY, kind text NOT NULL, owner_id text NOT NULL,
        due_at timestamptz NOT NULL, started_by text NOT NULL)`);
    });
    after(async () => {
      await t?.drop();
    });
    beforeEach(async () => {
      for (const s of schedulers.splice(0)) await s.stop();
      await t.db.query("DELETE FROM schedules");
      await t.db.query("DELETE FROM scheduled_runs");
      clock = new Date("2026-03-02T08:00:00Z");
    });

    /** A handler that inserts the run's row, after `delayMs` of holding the schedule's lock. */
    const recording =
      (startedBy: string, delayMs = 0): ScheduleHandler =>
      async (tx, due) => {
        if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
        await tx.query(
          "INSERT INTO scheduled_runs (kind, owner_id, due_at, started_by) VALUES ($1, $2, $3, $4)",
          [due.kind, due.ownerId, due.dueAt, startedBy],
        );
      };

    async function start(
      name: string,
      options: {
        db?: Database;
        handlers?: Partial<Record<ScheduleKind, ScheduleHandler>>;
        logger?: pino.Logger;
        pollMs?: number;
      } = {},
    ): Promise<Scheduler> {
      const handler = recording(name);
      const scheduler = await startScheduler({
        db: options.db ?? t.db,
        // A scheduler on a pool of its own is another process's: signals of its own.
        jobSignals: options.db ? new JobSignals() : t.jobSignals,
        logger: options.logger ?? pino({ level: "silent" }),
        handlers: options.handlers ?? {
          ETL: handler,
          EXPORT: handler,
          FILE_SYNCHRONIZATION: handler,
        },
        now,
        // The tests drive the scheduler with runDue; its own timer looks only when a test asks.
        pollMs: options.pollMs ?? 60_000,
        firstLookMs: options.pollMs === undefined ? 60_000 : 0,
      });
      schedulers.push(scheduler);
      return scheduler;
    }

    const save = (kind: ScheduleKind, ownerId: string, schedule: Schedule) =>
      saveSchedule(t.db, { kind, ownerId, entityId, schedule }, clock);
    const utc = (cron: string): Schedule => ({ cron, timezone: "UTC" });

    async function runs(ownerId?: string): Promise<RunRow[]> {
      const { rows } = await t.db.query<RunRow>(
        `SELECT kind, owner_id, due_at, started_by FROM scheduled_runs
          WHERE $1::text IS NULL OR owner_id = $1 ORDER BY due_at, id`,
        [ownerId ?? null],
      );
      return rows;
    }
    const dueTimes = async (ownerId: string) =>
      (await runs(ownerId)).map((r) => r.due_at.toISOString());

    test("two schedulers on the same schedules start one run per due time", async () => {
      // The handlers hold the schedule's lock a moment, so that the other scheduler meets it.
      const a = await start("a", {
        handlers: { ETL: recording("a", 15), EXPORT: recording("a", 15) },
      });
      const b = await start("b", {
        db: other,
        handlers: { ETL: recording("b", 15), EXPORT: recording("b", 15) },
      });
      await save("ETL", "every-15", utc("*/15 * * * *"));
      await save("EXPORT", "hourly", utc("0 * * * *"));
      for (let i = 0; i < 20; i++) await save("EXPORT", `fleet-${i}`, utc("30 8,9 * * *"));
      let started = 0;
      // Two hours in steps of five minutes, both schedulers looking at every step at once.
      for (let step = 1; step <= 24; step++) {
        clock = new Date(Date.parse("2026-03-02T08:00:00Z") + step * 5 * MINUTE);
        const counts = await Promise.all([a.runDue(), b.runDue(), a.runDue(), b.runDue()]);
        started += counts.reduce((x, y) => x + y, 0);
      }
      const quarter = (h: number, m: number) =>
        `2026-03-02T${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:00.000Z`;
      assert.deepEqual(await dueTimes("every-15"), [
        ...[15, 30, 45].map((m) => quarter(8, m)),
        ...[0, 15, 30, 45].map((m) => quarter(9, m)),
        quarter(10, 0),
      ]);
      assert.deepEqual(await dueTimes("hourly"), [quarter(9, 0), quarter(10, 0)]);
      for (let i = 0; i < 20; i++)
        assert.deepEqual(await dueTimes(`fleet-${i}`), [quarter(8, 30), quarter(9, 30)]);
      const all = await runs();
      assert.equal(all.length, 8 + 2 + 40);
      assert.equal(started, all.length, "runDue counts the runs it started");
      // A restart (new schedulers, same clock) starts nothing again.
      for (const s of schedulers.splice(0)) await s.stop();
      const c = await start("c");
      const d = await start("d", { db: other });
      assert.deepEqual(await Promise.all([c.runDue(), d.runDue()]), [0, 0]);
      assert.equal((await runs()).length, all.length);
      assert.equal(
        (await nextDueAt(t.db, "ETL", "every-15"))?.toISOString(),
        quarter(10, 15),
        "the next due time is after the clock",
      );
    });

    test("a run missed while no scheduler ran starts once, on the next start", async () => {
      const { logger, lines } = capturingLogger();
      await save("FILE_SYNCHRONIZATION", "crm", utc("0 * * * *"));
      // Down from 08:00 to 13:10: five due times (09:00 … 13:00) passed.
      clock = new Date("2026-03-02T13:10:00Z");
      const scheduler = await start("after-downtime", { logger });
      await scheduler.runDue();
      await scheduler.runDue();
      assert.deepEqual(await dueTimes("crm"), ["2026-03-02T09:00:00.000Z"]);
      assert.equal(
        (await nextDueAt(t.db, "FILE_SYNCHRONIZATION", "crm"))?.toISOString(),
        "2026-03-02T14:00:00.000Z",
      );
      const late = lines.find((l) => String(l.msg).includes("started late"));
      assert.ok(late, "the late start is logged");
      assert.equal(late.ownerId, "crm");
      assert.equal(late.level, 40);
    });

    test("nothing runs before its due time, and it runs at it", async () => {
      const scheduler = await start("s");
      await save("ETL", "daily", utc("0 9 * * *"));
      clock = new Date(Date.parse("2026-03-02T09:00:00Z") - 1);
      assert.equal(await scheduler.runDue(), 0);
      assert.deepEqual(await runs(), []);
      clock = new Date("2026-03-02T09:00:00Z");
      assert.equal(await scheduler.runDue(), 1);
      assert.deepEqual(await dueTimes("daily"), ["2026-03-02T09:00:00.000Z"]);
    });

    test("a kind without a handler in this process is left due for one that has it", async () => {
      const etlOnly = await start("etl-only", { handlers: { ETL: recording("etl-only") } });
      await save("EXPORT", "report", utc("0 9 * * *"));
      clock = new Date("2026-03-02T09:30:00Z");
      assert.equal(await etlOnly.runDue(), 0);
      const full = await start("full");
      assert.equal(await full.runDue(), 1);
      assert.deepEqual(await dueTimes("report"), ["2026-03-02T09:00:00.000Z"]);
    });

    test("saving an owner's schedule again replaces it; the same schedule keeps its due time", async () => {
      const scheduler = await start("s");
      await save("EXPORT", "report", utc("0 9 * * *"));
      await save("EXPORT", "report", utc("30 10 * * *"));
      assert.equal(
        (await nextDueAt(t.db, "EXPORT", "report"))?.toISOString(),
        "2026-03-02T10:30:00.000Z",
      );
      clock = new Date("2026-03-02T10:00:00Z");
      assert.equal(await scheduler.runDue(), 0, "the replaced 09:00 is gone");
      // Saved again unchanged just after its due time (the owner was edited): still run once.
      clock = new Date("2026-03-02T10:30:05Z");
      await save("EXPORT", "report", utc("30 10 * * *"));
      await scheduler.runDue();
      assert.deepEqual(await dueTimes("report"), ["2026-03-02T10:30:00.000Z"]);
      const { rows } = await t.db.query("SELECT count(*)::int AS n FROM schedules");
      assert.deepEqual(rows, [{ n: 1 }]);
    });

    test("removeSchedule stops it", async () => {
      const scheduler = await start("s");
      await save("ETL", "gone", utc("0 9 * * *"));
      await removeSchedule(t.db, "ETL", "gone");
      await removeSchedule(t.db, "ETL", "never-was");
      assert.equal(await nextDueAt(t.db, "ETL", "gone"), undefined);
      clock = new Date("2026-03-04T09:00:00Z");
      assert.equal(await scheduler.runDue(), 0);
      assert.deepEqual(await runs(), []);
    });

    test("a handler that throws skips its due time, without undoing or stopping the others", async () => {
      const { logger, lines } = capturingLogger();
      const ok = recording("s");
      const seen: DueRun[] = [];
      const scheduler = await start("s", {
        logger,
        handlers: {
          EXPORT: ok,
          ETL: async (tx, due) => {
            seen.push(due);
            if (due.ownerId !== "broken") return ok(tx, due);
            // Its own statements are undone with it.
            await ok(tx, due);
            throw new Error("ETL broken no longer exists");
          },
        },
      });
      await save("ETL", "broken", utc("50 8 * * *"));
      await save("ETL", "fine", utc("0 9 * * *"));
      await save("EXPORT", "report", utc("0 9 * * *"));
      clock = new Date("2026-03-02T09:05:00Z");
      assert.equal(await scheduler.runDue(), 2);
      assert.deepEqual((await runs()).map((r) => r.owner_id).sort(), ["fine", "report"]);
      assert.deepEqual(
        seen.map((d) => [d.ownerId, d.entityId, d.dueAt.toISOString()]),
        [
          ["broken", entityId, "2026-03-02T08:50:00.000Z"],
          ["fine", entityId, "2026-03-02T09:00:00.000Z"],
        ],
      );
      const { rows } = await t.db.query<{ next_due_at: Date; last_error: string | null }>(
        "SELECT next_due_at, last_error FROM schedules WHERE owner_id = 'broken'",
      );
      assert.equal(rows[0]!.next_due_at.toISOString(), "2026-03-03T08:50:00.000Z");
      assert.equal(rows[0]!.last_error, "ETL broken no longer exists");
      const logged = lines.find((l) => l.level === 50);
      assert.ok(logged, "the skip is logged at error");
      assert.equal(logged.ownerId, "broken");
      assert.match(
        String(logged.msg),
        /could not be started \(ETL broken no longer exists\); that due time is skipped, the next is 2026-03-03T08:50:00.000Z/,
      );
      // Not retried at the next look.
      assert.equal(await scheduler.runDue(), 0);
      assert.equal(seen.length, 2);
    });

    test("a deadlock in a handler leaves the due time due: it starts at the next look, once", async () => {
      let attempts = 0;
      const ok = recording("s");
      const scheduler = await start("s", {
        handlers: {
          EXPORT: async (tx, due) => {
            attempts++;
            await ok(tx, due);
            if (attempts === 1)
              throw Object.assign(new Error("deadlock detected"), { code: "40P01" });
          },
        },
      });
      await save("EXPORT", "report", utc("0 9 * * *"));
      clock = new Date("2026-03-02T09:01:00Z");
      await assert.rejects(scheduler.runDue(), /deadlock detected/);
      assert.deepEqual(await runs(), [], "the whole transaction was undone");
      assert.equal(
        (await nextDueAt(t.db, "EXPORT", "report"))?.toISOString(),
        "2026-03-02T09:00:00.000Z",
      );
      assert.equal(await scheduler.runDue(), 1);
      assert.equal(await scheduler.runDue(), 0);
      assert.deepEqual(await dueTimes("report"), ["2026-03-02T09:00:00.000Z"]);
    });

    test("a Europe/Brussels schedule keeps its wall-clock time across the spring change", async () => {
      const scheduler = await start("s");
      clock = new Date("2026-03-27T12:00:00Z");
      await save("ETL", "nightly", { cron: "30 2 * * *", timezone: "Europe/Brussels" });
      await save("EXPORT", "morning", { cron: "0 7 * * *", timezone: "Europe/Brussels" });
      // Four days in steps of twenty minutes.
      for (let step = 1; step <= 4 * 72; step++) {
        clock = new Date(Date.parse("2026-03-27T12:00:00Z") + step * 20 * MINUTE);
        await scheduler.runDue();
      }
      assert.deepEqual(await dueTimes("nightly"), [
        "2026-03-28T01:30:00.000Z", // 02:30 CET
        "2026-03-29T01:30:00.000Z", // 02:30 does not exist that night: 03:30 CEST, once
        "2026-03-30T00:30:00.000Z", // 02:30 CEST
        "2026-03-31T00:30:00.000Z",
      ]);
      assert.deepEqual(await dueTimes("morning"), [
        "2026-03-28T06:00:00.000Z", // 07:00 CET
        "2026-03-29T05:00:00.000Z", // 07:00 CEST
        "2026-03-30T05:00:00.000Z",
        "2026-03-31T05:00:00.000Z",
      ]);
    });

    test("the scheduler starts due runs by itself and wakes the job workers", async () => {
      let woken = 0;
      const unsubscribe = t.jobSignals.onJobsCreated(() => woken++);
      const notified: string[] = [];
      const unlisten = await other.listen(JOBS_CHANNEL, (payload) => notified.push(payload));
      let ran!: (due: DueRun) => void;
      const started = new Promise<DueRun>((resolve) => (ran = resolve));
      try {
        await save("ETL", "soon", utc("0 9 * * *"));
        await start("timer", {
          pollMs: 20,
          handlers: {
            ETL: async (tx, due) => {
              await recording("timer")(tx, due);
              ran(due);
            },
          },
        });
        clock = new Date("2026-03-02T09:00:00Z");
        const due = await started;
        assert.equal(due.dueAt.toISOString(), "2026-03-02T09:00:00.000Z");
        // The wake-ups come after the commit: wait for them rather than for a fixed time.
        const deadline = Date.now() + 10_000;
        while ((woken === 0 || notified.length === 0) && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(woken, 1, "the workers of this process are woken");
        assert.ok(notified.length >= 1, "the workers of other processes are notified");
        assert.deepEqual(await dueTimes("soon"), ["2026-03-02T09:00:00.000Z"]);
      } finally {
        unsubscribe();
        await unlisten();
      }
    });
  });
}
