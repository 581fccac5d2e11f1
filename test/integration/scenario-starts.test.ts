/**
 * Scenario starts (SPEC §7.4, DESIGN §6b) on both backends, on a test clock: the log starter
 * (DATA_EVENT CREATE and UPDATE with onFields and conditions, SEGMENT_ENTRY, SUBSCRIPTION) and the
 * DATE start through the scheduler (an anniversary across the day boundary of a time zone, 29
 * February on 28 February, an exact date, a timestamp). Events before the activation start nothing,
 * each matching event starts one run, the re-entry policies hold, a deactivated scenario starts
 * nothing more, a starter that stops hands its lease back and another goes on from the cursor, a
 * scenario let go while a claim looks is claimed again at once, and on PostgreSQL, when the lease
 * moves from a starter whose write is stalled to another and back, no event starts two runs.
 *
 * Profiles are written through the API and stamped by a sequencer, as in a running Herald.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import pino from "pino";
import type { Reentry, RunStart, ScenarioBlock, ScenarioStart } from "../../src/domain/scenario.js";
import { nextDueAfter } from "../../src/domain/schedule.js";
import type { Scheduler } from "../../src/jobs/scheduler.js";
import { startScheduler } from "../../src/jobs/scheduler.js";
import { startScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { scenarioScheduleHandler } from "../../src/jobs/scenarios/start-schedule.js";
import type { ScenarioStarter } from "../../src/jobs/scenarios/start-worker.js";
import { startScenarioStarter } from "../../src/jobs/scenarios/start-worker.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { Database } from "../../src/storage/database.js";
import { JobSignals } from "../../src/storage/job-signals.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { PostgresDatabase } from "../../src/storage/postgres-database.js";
import {
  ACTIVE,
  createProfileTable,
  customersTable,
  dateAttribute,
  EMAIL_KEY,
  NEWSLETTER,
  POINTS,
  TIER,
} from "../helpers/scenario-fixtures.js";
import type { TestApp } from "../helpers/test-app.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const logger = pino({ level: "silent" });

const TABLE = customersTable(
  [
    EMAIL_KEY,
    TIER,
    POINTS,
    dateAttribute("birthDate"),
    dateAttribute("renewalDate"),
    { name: "memberSince", type: "CUSTOM", valueType: "TIMESTAMP" },
  ],
  {
    subscriptions: [NEWSLETTER],
    segmentations: [ACTIVE, { name: "Loyalty", type: "EXCLUSIVE", segments: ["Gold", "Silver"] }],
  },
);

/** Every scenario here waits first: runs stay where they began unless a test ends them. */
const BLOCKS: ScenarioBlock[] = [
  { id: "wait", type: "WAIT", duration: "PT1H", next: "end" },
  { id: "end", type: "EXIT" },
];

const PROFILES = "/v4/entity/acme/table/Customers/profile";

interface RunRow {
  id: string;
  profile_id: number;
  status: string;
  block_id: string;
  due_at: Date | null;
  entry_key: string | null;
  start: RunStart;
  started_at: Date;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

for (const { backend, skip } of await testBackends()) {
  describe(`scenario starts on ${backend}`, { skip }, () => {
    let t: TestApp;
    let db: Database;
    let sequencer: Sequencer;
    let clock: Date;
    const now = () => clock;
    const starters: ScenarioStarter[] = [];
    const schedulers: Scheduler[] = [];
    let emails = 0;
    let scenarios = 0;

    before(async () => {
      t = await createTestApp(backend);
      db = t.database.db;
      await createProfileTable(t, TABLE);
      sequencer = await startSequencer({
        db,
        logSignals: t.database.logSignals,
        logger,
        pollMs: 20,
      });
    });
    after(async () => {
      for (const s of starters.splice(0)) await s.stop();
      for (const s of schedulers.splice(0)) await s.stop();
      await sequencer?.stop();
      await t?.close();
    });
    beforeEach(async () => {
      for (const s of starters.splice(0)) await s.stop();
      for (const s of schedulers.splice(0)) await s.stop();
      // Nothing left over from the test before: its scenarios stop being ACTIVE.
      await db.query("UPDATE scenarios SET status = 'INACTIVE'");
      await db.query("DELETE FROM schedules WHERE kind = 'SCENARIO'");
      clock = new Date("2026-03-02T08:00:00Z");
    });

    /** A starter of this process (or, with `on`, of another process with its own pool). */
    async function starter(
      options: {
        workerId?: string;
        on?: Database;
        /** With `on`: a pool of this process all the same (its sequencer hands it what it stamps). */
        thisProcess?: boolean;
        leaseMs?: number;
        renewMs?: number;
        progressMs?: number;
      } = {},
    ): Promise<ScenarioStarter> {
      const other = options.on !== undefined && !options.thisProcess;
      const s = await startScenarioStarter({
        db: options.on ?? db,
        logSignals: other ? new LogSignals() : t.database.logSignals,
        jobSignals: other ? new JobSignals() : t.database.jobSignals,
        logger,
        config: t.config,
        now,
        pollMs: 50,
        batchSize: 50,
        leaseMs: options.leaseMs ?? 5_000,
        renewMs: options.renewMs ?? 100,
        progressMs: options.progressMs ?? 20,
        workerId: options.workerId ?? "starter-a",
        takeOverAtStart: false,
      });
      starters.push(s);
      return s;
    }

    /** Every event written so far is stamped (the log's head is where activation puts the cursor). */
    async function settled(): Promise<number> {
      await waitFor("the sequencer to stamp every event", async () => {
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM change_events WHERE position IS NULL",
        );
        return rows[0]!.n === 0;
      });
      const { rows } = await db.query<{ position: number }>("SELECT position FROM log_head");
      return rows[0]?.position ?? 0;
    }

    /** Creates and activates a scenario through the API; its runs wait an hour, then exit. */
    async function activate(name: string, start: ScenarioStart, reentry: Reentry): Promise<string> {
      const created = await t.request("POST", "/v5/entities/acme/scenarios", {
        name: `${name}-${++scenarios}`,
        profileTable: "Customers",
        reentry,
        start,
        blocks: BLOCKS,
      });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json().id as string;
      const activated = await t.request("POST", `/v5/entities/acme/scenarios/${id}/activate`);
      assert.equal(activated.statusCode, 200, activated.body);
      return id;
    }

    /**
     * An ACTIVE scenario whose start reads the log, activated once every event written before is
     * stamped (the activation puts the cursor at the log's head).
     */
    async function activeScenario(
      name: string,
      start: ScenarioStart,
      reentry: Reentry = "ALWAYS",
    ): Promise<string> {
      await settled();
      return activate(name, start, reentry);
    }

    /** The scenario's cursor has reached the log's head: every event written so far was read. */
    async function caughtUp(scenarioId: string): Promise<void> {
      const head = await settled();
      await waitFor(`scenario ${scenarioId} to read the log up to ${head}`, async () => {
        const { rows } = await db.query<{ log_cursor: number }>(
          "SELECT log_cursor FROM scenarios WHERE id = $1",
          [scenarioId],
        );
        return rows[0]!.log_cursor >= head;
      });
    }

    async function runs(scenarioId: string): Promise<RunRow[]> {
      const { rows } = await db.query<RunRow>(
        `SELECT id::text AS id, profile_id, status, block_id, due_at, entry_key, start, started_at
           FROM scenario_runs WHERE scenario_id = $1 ORDER BY id`,
        [scenarioId],
      );
      return rows;
    }

    async function createProfile(attributes: Record<string, unknown> = {}): Promise<number> {
      const res = await t.request("POST", PROFILES, {
        attributes: [
          { name: "emailAddress", value: `p${++emails}@example.com` },
          ...Object.entries(attributes).map(([name, value]) => ({ name, value })),
        ],
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().profileId as number;
    }

    async function updateProfile(id: number, attributes: Record<string, unknown>): Promise<void> {
      const res = await t.request("PUT", `${PROFILES}/${id}`, {
        attributes: Object.entries(attributes).map(([name, value]) => ({ name, value })),
      });
      assert.equal(res.statusCode, 200, res.body);
    }

    test("DATA_EVENT CREATE: profiles created after the activation start one run each, those before none", async () => {
      const before = await createProfile();
      const id = await activeScenario("welcome", {
        type: "DATA_EVENT",
        eventType: "CREATE",
        onFields: [],
        conditions: {},
      });
      await starter();
      const created = [await createProfile(), await createProfile(), await createProfile()];
      await caughtUp(id);
      const started = await runs(id);
      assert.deepEqual(
        started.map((r) => r.profile_id),
        created,
      );
      assert.ok(!started.some((r) => r.profile_id === before), "created before the activation");
      const { rows: events } = await db.query<{ id: number; position: number; record_key: string }>(
        `SELECT id, position, record_key FROM change_events
          WHERE event_type = 'CREATE' AND record_key = ANY ($1::text[]) ORDER BY position`,
        [created.map(String)],
      );
      for (const [i, run] of started.entries()) {
        assert.equal(run.status, "RUNNING");
        assert.equal(run.block_id, "wait");
        assert.equal(run.due_at?.getTime(), clock.getTime());
        assert.equal(run.started_at.getTime(), clock.getTime());
        assert.equal(run.entry_key, null, "ALWAYS sets no re-entry key");
        assert.deepEqual(run.start, {
          type: "DATA_EVENT",
          position: events[i]!.position,
          eventId: `evt_${events[i]!.id}`,
        });
      }
      const { rows: counts } = await db.query<{ block_id: string; entered: number }>(
        "SELECT block_id, entered FROM scenario_block_counts WHERE scenario_id = $1",
        [id],
      );
      assert.deepEqual(counts, [{ block_id: "wait", entered: 3 }]);
    });

    test("DATA_EVENT UPDATE: onFields and conditions on the states before and after", async () => {
      const a = await createProfile({ tier: "Silver" });
      const b = await createProfile({ tier: "Silver" });
      const id = await activeScenario("became-gold", {
        type: "DATA_EVENT",
        eventType: "UPDATE",
        onFields: ["tier"],
        conditions: {
          stateBeforeOperation: [{ attribute: "tier", operator: "!=", value: "Gold" }],
          stateAfterOperation: [{ attribute: "tier", operator: "=", value: "Gold" }],
        },
      });
      await starter();
      await updateProfile(a, { points: 10 }); // not a listed field
      await updateProfile(b, { tier: "Bronze" }); // listed, but not Gold after
      await updateProfile(a, { tier: "Gold" }); // starts
      await updateProfile(a, { tier: "Gold", points: 11 }); // Gold already before: no tier change
      await updateProfile(b, { tier: "Gold" }); // starts
      await caughtUp(id);
      assert.deepEqual(
        (await runs(id)).map((r) => r.profile_id),
        [a, b],
      );
    });

    test("SEGMENT_ENTRY: entering the segment starts a run; another segment or leaving does not", async () => {
      const a = await createProfile();
      const b = await createProfile();
      const id = await activeScenario("gold-members", {
        type: "SEGMENT_ENTRY",
        segmentation: "Loyalty",
        segment: "Gold",
      });
      await starter();
      const put = (profile: number, segment: string) =>
        t.request("PUT", `${PROFILES}/${profile}/segmentation/Loyalty`, { name: segment });
      assert.equal((await put(a, "Silver")).statusCode, 200);
      assert.equal((await put(a, "Gold")).statusCode, 200); // starts
      assert.equal((await put(b, "Silver")).statusCode, 200);
      assert.equal((await put(a, "Silver")).statusCode, 200); // leaves Gold
      await caughtUp(id);
      const started = await runs(id);
      assert.deepEqual(
        started.map((r) => [r.profile_id, r.start.type]),
        [[a, "SEGMENT_ENTRY"]],
      );
    });

    test("SUBSCRIPTION: subscribing starts a run; unsubscribing does not", async () => {
      const a = await createProfile();
      const id = await activeScenario("subscribed", {
        type: "SUBSCRIPTION",
        subscription: "newsletter",
        subscribe: true,
      });
      const leaving = await activeScenario("unsubscribed", {
        type: "SUBSCRIPTION",
        subscription: "newsletter",
        subscribe: false,
      });
      await starter();
      const sub = `${PROFILES}/${a}/subscription/newsletter`;
      assert.equal((await t.request("POST", sub)).statusCode, 200);
      assert.equal((await t.request("DELETE", sub)).statusCode, 204);
      await caughtUp(id);
      await caughtUp(leaving);
      assert.deepEqual(
        (await runs(id)).map((r) => [r.profile_id, r.start.type]),
        [[a, "SUBSCRIPTION"]],
      );
      assert.deepEqual(
        (await runs(leaving)).map((r) => r.profile_id),
        [a],
      );
    });

    test("re-entry: NEVER once for good, AFTER_EXIT again once the run ended, ALWAYS every time", async () => {
      const p = await createProfile({ points: 0 });
      const start: ScenarioStart = {
        type: "DATA_EVENT",
        eventType: "UPDATE",
        onFields: ["points"],
        conditions: {},
      };
      const never = await activeScenario("never", start, "NEVER");
      const afterExit = await activeScenario("after-exit", start, "AFTER_EXIT");
      const always = await activeScenario("always", start, "ALWAYS");
      // The engine moves the runs: into their WAIT now, out of it to the EXIT an hour later.
      const engine = await startScenarioRunWorker({
        db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger,
        config: t.config,
        now,
        pollMs: 60_000,
      });
      try {
        await starter();
        await updateProfile(p, { points: 1 });
        await updateProfile(p, { points: 2 });
        for (const id of [never, afterExit, always]) await caughtUp(id);
        assert.equal((await runs(never)).length, 1);
        assert.equal((await runs(afterExit)).length, 1);
        assert.equal((await runs(always)).length, 2);
        assert.equal((await runs(never))[0]!.entry_key, `profile:${p}`);
        // While the runs wait, the profile changes again: AFTER_EXIT's run has not ended.
        await engine.runDue();
        await updateProfile(p, { points: 3 });
        for (const id of [never, afterExit, always]) await caughtUp(id);
        assert.equal((await runs(afterExit)).length, 1, "AFTER_EXIT: not while the run goes on");
        assert.equal((await runs(always)).length, 3);
        // An hour later every run reaches its EXIT; the profile changes again.
        clock = new Date(clock.getTime() + 2 * 3_600_000);
        await engine.runDue();
        for (const id of [never, afterExit, always])
          assert.ok(
            (await runs(id)).every((r) => r.status === "FINISHED"),
            "the engine ended the runs",
          );
        await updateProfile(p, { points: 4 });
        for (const id of [never, afterExit, always]) await caughtUp(id);
        assert.equal((await runs(never)).length, 1, "NEVER: the profile never enters again");
        assert.equal((await runs(afterExit)).length, 2, "AFTER_EXIT: again once the run ended");
        assert.equal((await runs(always)).length, 4);
        const { rows: counts } = await db.query<{ entered: number }>(
          "SELECT entered FROM scenario_block_counts WHERE scenario_id = $1 AND block_id = 'wait'",
          [afterExit],
        );
        assert.deepEqual(counts, [{ entered: 2 }], "only the runs created are counted");
      } finally {
        await engine.stop();
      }
    });

    test("a deactivated scenario starts nothing more, and its lease is given back", async () => {
      const id = await activeScenario("stopped", {
        type: "DATA_EVENT",
        eventType: "CREATE",
        onFields: [],
        conditions: {},
      });
      const s = await starter();
      await createProfile();
      await caughtUp(id);
      assert.equal((await runs(id)).length, 1);
      assert.deepEqual(s.following(), [id]);
      const off = await t.request("POST", `/v5/entities/acme/scenarios/${id}/deactivate`, {});
      assert.equal(off.statusCode, 200, off.body);
      await createProfile();
      await createProfile();
      await settled();
      await waitFor("the starter to let the scenario go", async () => s.following().length === 0);
      const { rows } = await db.query<{ lease_owner: string | null }>(
        "SELECT lease_owner FROM scenarios WHERE id = $1",
        [id],
      );
      assert.equal(rows[0]!.lease_owner, null);
      // Given the time to read what came after, it still has started nothing more.
      await sleep(300);
      assert.equal((await runs(id)).length, 1);
    });

    test("deactivated and activated again at once: one follower from the new cursor, the old one stopped", async () => {
      const id = await activeScenario("again", {
        type: "DATA_EVENT",
        eventType: "CREATE",
        onFields: [],
        conditions: {},
      });
      // Renewals far apart: the starter takes the scenario again only through the claim that the
      // activation's wake-up makes. A window with nothing to start is written 1.5 s after it was
      // read, so the first follower still holds one when the scenario is activated again.
      const s = await starter({ renewMs: 60_000, leaseMs: 120_000, progressMs: 1_500 });
      await waitFor("the starter to follow the scenario", async () => s.following().includes(id));
      const first = await createProfile();
      await caughtUp(id);
      await sleep(200); // its writes are over
      const off = await t.request("POST", `/v5/entities/acme/scenarios/${id}/deactivate`, {});
      assert.equal(off.statusCode, 200, off.body);
      await updateProfile(first, { points: 1 }); // read by the first follower, starts nothing
      await settled();
      await sleep(300);
      const on = await t.request("POST", `/v5/entities/acme/scenarios/${id}/activate`);
      assert.equal(on.statusCode, 200, on.body);
      const created = [await createProfile(), await createProfile()];
      await caughtUp(id);
      // Past the first follower's write of its window: left running, it would find the cursor
      // moved by the new activation, report its scenario lost, and the new follower would be
      // stopped in its place (nothing would start the next profile's run).
      await sleep(2_000);
      assert.deepEqual(s.following(), [id]);
      const later = await createProfile();
      await caughtUp(id);
      assert.deepEqual(
        (await runs(id)).map((r) => r.profile_id),
        [first, ...created, later],
        "each event after an activation started exactly one run",
      );
      const { rows } = await db.query<{ lease_owner: string | null }>(
        "SELECT lease_owner FROM scenarios WHERE id = $1",
        [id],
      );
      assert.equal(rows[0]!.lease_owner, "starter-a");
    });

    test("a scenario let go while a claim looks is claimed again once its lease is back, not at the next renewal", async () => {
      const id = await activeScenario("let-go", {
        type: "DATA_EVENT",
        eventType: "CREATE",
        onFields: [],
        conditions: {},
      });
      // Renewals far apart: only the claim that follows the drop can take the scenario back in time.
      const s = await starter({ renewMs: 60_000, leaseMs: 120_000 });
      await waitFor("the starter to follow the scenario", async () => s.following().includes(id));
      const first = await createProfile();
      await caughtUp(id);
      // The stored definition no longer is the follower's: the renewal drops the follower, and the
      // claim of the same look leaves the scenario out while the drop hands its lease back.
      await db.query(
        `UPDATE scenarios SET definition = jsonb_set(definition, '{blocks,0,duration}', '"PT2H"')
          WHERE id = $1`,
        [id],
      );
      s.wake();
      const later = await createProfile();
      await caughtUp(id);
      assert.deepEqual(
        (await runs(id)).map((r) => r.profile_id),
        [first, later],
      );
      assert.deepEqual(s.following(), [id]);
    });

    test("a starter that stops hands its lease back; another goes on from the cursor", async () => {
      const id = await activeScenario("hand-over", {
        type: "DATA_EVENT",
        eventType: "CREATE",
        onFields: [],
        conditions: {},
      });
      const first = await starter({ workerId: "starter-a" });
      const early = await createProfile();
      await caughtUp(id);
      await first.stop();
      const { rows: released } = await db.query<{ lease_owner: string | null; log_cursor: number }>(
        "SELECT lease_owner, log_cursor FROM scenarios WHERE id = $1",
        [id],
      );
      assert.equal(released[0]!.lease_owner, null, "handed back at stop");
      // Written while no starter runs: the next one starts them from the cursor.
      const whileNone = [await createProfile(), await createProfile()];
      const second = await starter({ workerId: "starter-b" });
      await waitFor("the second starter to take the scenario", async () =>
        second.following().includes(id),
      );
      const late = await createProfile();
      await caughtUp(id);
      assert.deepEqual(
        (await runs(id)).map((r) => r.profile_id),
        [early, ...whileNone, late],
      );
    });

    test("DATE: anniversaries on the day of the due time in the start's zone, once per day", async () => {
      // 09:00 in Auckland (UTC+13 in March) is 20:00 UTC the day before: the day is Auckland's.
      const due = new Date("2026-03-14T20:00:00Z");
      clock = new Date(due.getTime() - 60_000);
      const birthday = await createProfile({ birthDate: "1990-03-15" });
      const sameDay = await createProfile({ birthDate: "2001-03-15" });
      await createProfile({ birthDate: "1990-03-14" }); // the UTC day: not picked
      await createProfile({ birthDate: "1990-03-16" });
      await createProfile(); // no birth date
      // 2025-03-14 12:00 UTC is 2025-03-15 01:00 in Auckland: a timestamp's day is the zone's.
      const member = await createProfile({ memberSince: "2025-03-14T12:00:00Z" });
      await createProfile({ memberSince: "2025-03-15T12:00:00Z" }); // the 16th in Auckland
      const renewal = await createProfile({ renewalDate: "2026-03-15" });
      await createProfile({ renewalDate: "2025-03-15" }); // same day, another year: exact dates only
      const at = { at: "09:00", timezone: "Pacific/Auckland" };
      const birthdays = await dateScenario("birthdays", {
        type: "DATE",
        attribute: "birthDate",
        anniversary: true,
        ...at,
      });
      const members = await dateScenario(
        "members",
        { type: "DATE", attribute: "memberSince", anniversary: true, ...at },
        "NEVER",
      );
      const renewals = await dateScenario("renewals", {
        type: "DATE",
        attribute: "renewalDate",
        anniversary: false,
        ...at,
      });
      const scheduler = await dateScheduler();
      assert.equal(await scheduler.runDue(), 0, "nothing before the due time");
      clock = new Date(due.getTime() + 5_000);
      assert.equal(await scheduler.runDue(), 3);
      assert.equal(await scheduler.runDue(), 0, "each due time starts once");
      const started = await runs(birthdays);
      assert.deepEqual(started.map((r) => r.profile_id).sort(), [birthday, sameDay].sort());
      for (const run of started) {
        assert.deepEqual(run.start, { type: "DATE", date: "2026-03-15" });
        assert.equal(run.block_id, "wait");
        assert.equal(run.status, "RUNNING");
        assert.equal(run.due_at?.getTime(), clock.getTime());
        assert.equal(run.entry_key, null);
      }
      assert.deepEqual(
        (await runs(members)).map((r) => [r.profile_id, r.entry_key]),
        [[member, `profile:${member}`]],
      );
      assert.deepEqual(
        (await runs(renewals)).map((r) => r.profile_id),
        [renewal],
      );
      const { rows: counts } = await db.query<{ entered: number }>(
        "SELECT entered FROM scenario_block_counts WHERE scenario_id = $1",
        [birthdays],
      );
      assert.deepEqual(counts, [{ entered: 2 }]);
      // A year later the NEVER scenario starts nobody again; the others do.
      const { rows: next } = await db.query<{ next_due_at: Date }>(
        "SELECT next_due_at FROM schedules WHERE kind = 'SCENARIO' AND owner_id = $1",
        [birthdays],
      );
      assert.equal(next[0]!.next_due_at.toISOString(), "2026-03-15T20:00:00.000Z");
      await db.query("UPDATE schedules SET next_due_at = $1 WHERE kind = 'SCENARIO'", [
        new Date("2027-03-14T20:00:00Z"),
      ]);
      clock = new Date("2027-03-14T20:00:01Z");
      assert.equal(await scheduler.runDue(), 3);
      assert.equal((await runs(birthdays)).length, 4);
      assert.equal((await runs(members)).length, 1, "NEVER: not twice");
      assert.equal((await runs(renewals)).length, 1, "an exact date comes once");
    });

    test("DATE: 29 February birthdays are celebrated on 28 February in other years", async () => {
      const leap = await createProfile({ birthDate: "2000-02-29" });
      const feb28 = await createProfile({ birthDate: "1999-02-28" });
      await createProfile({ birthDate: "1999-03-01" });
      const id = await dateScenario("leap", {
        type: "DATE",
        attribute: "birthDate",
        anniversary: true,
        at: "09:00",
        timezone: "UTC",
      });
      const scheduler = await dateScheduler();
      await db.query("UPDATE schedules SET next_due_at = $1 WHERE owner_id = $2", [
        new Date("2026-02-28T09:00:00Z"),
        id,
      ]);
      clock = new Date("2026-02-28T09:00:00Z");
      assert.equal(await scheduler.runDue(), 1);
      assert.deepEqual((await runs(id)).map((r) => r.profile_id).sort(), [leap, feb28].sort());
      // In a leap year the 29th has its own day.
      await db.query("UPDATE schedules SET next_due_at = $1 WHERE owner_id = $2", [
        new Date("2028-02-28T09:00:00Z"),
        id,
      ]);
      clock = new Date("2028-02-28T09:00:00Z");
      await scheduler.runDue();
      assert.deepEqual(
        (await runs(id)).slice(2).map((r) => r.profile_id),
        [feb28],
      );
      clock = new Date("2028-02-29T09:00:00Z");
      await scheduler.runDue();
      assert.deepEqual(
        (await runs(id)).slice(3).map((r) => r.profile_id),
        [leap],
      );
    });

    test("DATE: a stored value that is no timestamp has no day; the day's other profiles still start", async () => {
      const member = await createProfile({ memberSince: "2020-03-02T10:00:00Z" });
      const offset = await createProfile({ memberSince: "2021-03-02T23:30:00-01:00" }); // the 3rd in UTC
      const broken: number[] = [];
      // Values capture would refuse, written as an older version or a direct import might have
      // left them: each would make the cast of the whole statement throw.
      for (const value of [
        "2020-02-30T10:00:00Z",
        "2019-03-02T25:00:00Z",
        "2019-03-02T10:00:00+99:00",
        "0000-03-02T10:00:00Z",
        "2019-03-02Tnoon",
      ]) {
        const id = await createProfile();
        await db.query(
          `UPDATE records SET attributes = jsonb_set(attributes, '{memberSince}', to_jsonb($2::text))
            WHERE record_id = $1`,
          [id, value],
        );
        broken.push(id);
      }
      const id = await dateScenario("members-day", {
        type: "DATE",
        attribute: "memberSince",
        anniversary: true,
        at: "09:00",
        timezone: "UTC",
      });
      const scheduler = await dateScheduler();
      clock = new Date("2026-03-02T09:00:00Z");
      assert.equal(await scheduler.runDue(), 1);
      const started = (await runs(id)).map((r) => r.profile_id);
      assert.deepEqual(started, [member]);
      assert.ok(!started.includes(offset) && !broken.some((b) => started.includes(b)));
    });

    test("DATE: a deactivated scenario's due time starts nothing", async () => {
      await createProfile({ birthDate: "1990-03-02" });
      const id = await dateScenario("inactive", {
        type: "DATE",
        attribute: "birthDate",
        anniversary: true,
        at: "09:00",
        timezone: "UTC",
      });
      // A schedule left behind by a scenario no longer ACTIVE (the deactivation removes it).
      await db.query("UPDATE scenarios SET status = 'INACTIVE' WHERE id = $1", [id]);
      const scheduler = await dateScheduler();
      clock = new Date("2026-03-02T09:00:00Z");
      await scheduler.runDue();
      assert.equal((await runs(id)).length, 0);
    });

    /**
     * An ACTIVE scenario with a DATE start. The activation saves its daily schedule from the
     * system's clock; the tests run the scheduler on theirs, so its first due time is moved to the
     * first after the test clock.
     */
    async function dateScenario(
      name: string,
      start: Extract<ScenarioStart, { type: "DATE" }>,
      reentry: Reentry = "ALWAYS",
    ): Promise<string> {
      const id = await activate(name, start, reentry);
      const [hour, minute] = start.at.split(":").map(Number);
      const schedule = { cron: `${minute} ${hour} * * *`, timezone: start.timezone };
      const { rowCount } = await db.query(
        "UPDATE schedules SET next_due_at = $1 WHERE kind = 'SCENARIO' AND owner_id = $2",
        [nextDueAfter(schedule, clock), id],
      );
      assert.equal(rowCount, 1, "the activation saved the DATE start's schedule");
      return id;
    }

    async function dateScheduler(): Promise<Scheduler> {
      const scheduler = await startScheduler({
        db,
        jobSignals: t.database.jobSignals,
        logger,
        handlers: { SCENARIO: scenarioScheduleHandler({ now }) },
        now,
        pollMs: 60_000,
        firstLookMs: 60_000,
      });
      schedulers.push(scheduler);
      return scheduler;
    }

    test(
      "two starters on PostgreSQL, their leases moving between them, never start a run twice",
      {
        skip: backend === "postgres" ? false : "two processes need PostgreSQL",
      },
      async () => {
        const id = await activeScenario("contended", {
          type: "DATA_EVENT",
          eventType: "UPDATE",
          onFields: [],
          conditions: {},
        });
        // starter-a is this process's, its pool behind a proxy the test can stall; starter-b is
        // another process's. Leases and renewals far apart: the lease moves when the test moves it.
        const target = new URL(t.database.url!);
        const proxy = await startTcpProxy({
          host: target.hostname,
          port: Number(target.port || 5432),
        });
        const stalled = new PostgresDatabase({
          connectionString: proxy.urlFor(t.database.url!),
          maxConnections: 4,
        });
        try {
          const timing = { leaseMs: 60_000, renewMs: 60_000 };
          const a = await starter({
            workerId: "starter-a",
            on: stalled,
            thisProcess: true,
            ...timing,
          });
          await waitFor("starter-a to follow the scenario", async () => a.following().includes(id));
          const b = await starter({
            workerId: "starter-b",
            on: await t.database.connect(4),
            ...timing,
          });
          const owner = async () => {
            const { rows } = await db.query<{ lease_owner: string | null }>(
              "SELECT lease_owner FROM scenarios WHERE id = $1",
              [id],
            );
            return rows[0]!.lease_owner;
          };
          const owners: (string | null)[] = [];
          const profiles: number[] = [];
          for (let i = 0; i < 10; i++) profiles.push(await createProfile({ points: 0 }));
          let updates = 0;
          const update = async (n: number) => {
            for (let i = 0; i < n; i++, updates++)
              await updateProfile(profiles[updates % profiles.length]!, { points: updates + 1 });
          };
          await update(20);
          await caughtUp(id);
          owners.push(await owner());

          // starter-a's connection stalls as it writes the runs of the next updates (this process's
          // sequencer hands it the events, so it reads nothing first); its lease expires meanwhile.
          proxy.blackHole();
          await update(10);
          await settled();
          await sleep(300); // the hand-over reaches starter-a, whose write goes into the hole
          await db.query(
            "UPDATE scenarios SET lease_until = now() - interval '1 second' WHERE id = $1",
            [id],
          );
          b.wake();
          // starter-b takes the lease over and starts the runs of the same updates from the cursor.
          await caughtUp(id);
          owners.push(await owner());
          // starter-b stops (its lease handed back), and starter-a's worker id holds the lease again,
          // as its claim would once its connection is back; then the stalled write goes through.
          await b.stop();
          await db.query(
            `UPDATE scenarios SET lease_owner = 'starter-a', lease_until = now() + interval '1 minute'
              WHERE id = $1 AND lease_owner IS NULL`,
            [id],
          );
          proxy.restore();
          await update(10);
          await caughtUp(id);
          owners.push(await owner());
          assert.deepEqual(owners, ["starter-a", "starter-b", "starter-a"], "the lease moved");

          const started = await runs(id);
          const positions = started.map((r) => (r.start as { position: number }).position);
          assert.equal(new Set(positions).size, positions.length, "an event started two runs");
          assert.equal(started.length, updates, "every update started its run");
        } finally {
          proxy.restore();
          for (const s of starters.splice(0)) await s.stop();
          await stalled.close();
          await proxy.close();
        }
      },
    );
  });
}
