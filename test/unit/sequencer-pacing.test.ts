/**
 * How the leader paces its stamping rounds, against a scripted database whose stamping call takes
 * a chosen time (no server needed): in busy mode rounds start `busyPollMs` apart, counted from the
 * start of the previous round, so a round slower than that (a commit waiting for the WAL flush) is
 * overlapped by the next instead of followed after a further pause; a local commit wakes the leader
 * at once; stamped heads are announced to this process.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { AdvisoryLock, Database, QueryResult } from "../../src/storage/database.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { PGLITE_CAPABILITIES } from "../../src/storage/pglite-database.js";
import { POSTGRES_CAPABILITIES } from "../../src/storage/postgres-database.js";

interface Call {
  startedAt: number;
  endedAt: number;
  stamped: number;
  /** Calls running when this one started (itself included). */
  concurrent: number;
}

/**
 * A database whose stamping call lasts `callMs` and finds `eventsPerCall` events on each of the
 * first `busyCalls` calls.
 */
function scriptedDatabase(
  callMs: number,
  busyCalls: number,
  kind: Database["kind"] = "postgres",
  eventsPerCall = 1,
): { db: Database; logSignals: LogSignals; calls: Call[] } {
  const calls: Call[] = [];
  let head = 0;
  let running = 0;
  const lock: AdvisoryLock = { release: async () => {}, lost: new Promise<Error>(() => {}) };
  const db: Database = {
    kind,
    capabilities: kind === "pglite" ? PGLITE_CAPABILITIES : POSTGRES_CAPABILITIES,
    async query<T>(sql: string): Promise<QueryResult<T>> {
      assert.match(sql, /herald_stamp_events/);
      const startedAt = Date.now();
      const concurrent = ++running;
      await new Promise((resolve) => setTimeout(resolve, callMs));
      running--;
      const stamped = calls.length < busyCalls ? eventsPerCall : 0;
      head += stamped;
      calls.push({ startedAt, endedAt: Date.now(), stamped, concurrent });
      return { rows: [{ stamped, head, max_lag_ms: 0 } as T], rowCount: 1 };
    },
    exec: async () => {},
    transaction: () => Promise.reject(new Error("not used by the sequencer")),
    listen: async () => async () => {},
    tryAdvisoryLock: async () => lock,
    close: async () => {},
  };
  return { db, logSignals: new LogSignals(), calls };
}

async function runUntil(calls: Call[], count: number, sequencer: Sequencer): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (calls.length < count && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
  await sequencer.stop();
  assert.ok(calls.length >= count, `only ${calls.length} stamping calls in 10 s`);
}

describe("sequencer pacing", () => {
  const logger = createLogger("silent");

  test("a round that found work but took longer than busyPollMs is followed at once", async () => {
    const { db, logSignals, calls } = scriptedDatabase(120, 4);
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 100,
      pollMs: 60_000,
    });
    await runUntil(calls, 5, sequencer);
    // Calls 2..4 follow rounds that found work and lasted 120 ms > 100 ms: no pause between them.
    for (let i = 1; i < 4; i++) {
      const gap = calls[i]!.startedAt - calls[i - 1]!.endedAt;
      assert.ok(gap < 60, `pause of ${gap} ms before call ${i + 1}; expected none`);
    }
  });

  test("a quicker round waits out the rest of busyPollMs, counted from its start", async () => {
    const { db, logSignals, calls } = scriptedDatabase(20, 4);
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 150,
      pollMs: 60_000,
    });
    await runUntil(calls, 5, sequencer);
    for (let i = 1; i < 4; i++) {
      const spacing = calls[i]!.startedAt - calls[i - 1]!.startedAt;
      // Timers never fire early (1 ms of rounding allowed); an unloaded loop keeps it well under 2x.
      assert.ok(spacing >= 149, `call ${i + 1} started ${spacing} ms after the previous one`);
    }
    // After the last round with work comes an empty check, then busy polling every busyPollMs.
    const empty = calls.findIndex((call) => call.stamped === 0);
    assert.equal(empty, 4);
  });

  test("rounds that stamp many events are spaced out so the next gathers more; few events are not", async () => {
    const options = {
      logger,
      busyPollMs: 10,
      pollMs: 60_000,
      coalesceFromEvents: 8,
      coalesceMsPerEvent: 4,
      maxCoalesceMs: 100,
    };
    /** How long after the previous one each of the first rounds started, at `events` per round. */
    const spacings = async (events: number): Promise<number[]> => {
      const { db, logSignals, calls } = scriptedDatabase(5, 6, "postgres", events);
      await runUntil(calls, 6, await startSequencer({ db, logSignals, ...options }));
      return calls.slice(1, 5).map((call, i) => call.startedAt - calls[i]!.startedAt);
    };
    // 20 events × 4 ms = 80 ms (under the 100 ms cap).
    for (const spacing of await spacings(20))
      assert.ok(spacing >= 79, `a round started ${spacing} ms after one of 20 events`);
    for (const spacing of await spacings(7))
      assert.ok(spacing < 60, `a round started ${spacing} ms after one of 7 events`);
  });

  test("a slow round is overlapped busyPollMs after it started, never by more than one", async () => {
    const { db, logSignals, calls } = scriptedDatabase(200, 6);
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 60,
      pollMs: 60_000,
    });
    await runUntil(calls, 6, sequencer);
    const sorted = [...calls].sort((a, b) => a.startedAt - b.startedAt);
    assert.ok(
      calls.every((call) => call.concurrent <= 2),
      "more than two stamping rounds ran at once",
    );
    assert.ok(
      calls.some((call) => call.concurrent === 2),
      "no round overlapped a slow one",
    );
    // The scripted database notes a round's start when its statement reaches it, a few ms after the
    // sequencer took the time it counts from when the event loop is busy (a CI run saw 58 ms): the
    // spacing is checked against busyPollMs less that slack, far above the 3 ms default.
    for (let i = 1; i < sorted.length; i++) {
      const spacing = sorted[i]!.startedAt - sorted[i - 1]!.startedAt;
      assert.ok(spacing >= 55, `round ${i + 1} started ${spacing} ms after the previous one`);
    }
  });

  test("after a check that found nothing, the next waits busyPollMs from its end", async () => {
    const { db, logSignals, calls } = scriptedDatabase(60, 1);
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 40,
      busyLingerMs: 60_000,
      pollMs: 60_000,
    });
    await runUntil(calls, 6, sequencer);
    // The check after the round with work may be overlapped (it might have stamped); once checks
    // find nothing, each waits a full busyPollMs after the previous one ended.
    for (let i = 3; i < 6; i++) {
      const gap = calls[i]!.startedAt - calls[i - 1]!.endedAt;
      assert.ok(gap >= 39, `only ${gap} ms after the empty check before call ${i + 1}`);
      assert.equal(calls[i]!.concurrent, 1);
    }
  });

  test("on the embedded database rounds never overlap", async () => {
    const { db, logSignals, calls } = scriptedDatabase(120, 4, "pglite");
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 50,
      pollMs: 60_000,
    });
    await runUntil(calls, 5, sequencer);
    assert.ok(calls.every((call) => call.concurrent === 1));
  });

  test("a local commit wakes the leader at once; while a round runs, it waits for busyPollMs", async () => {
    const { db, logSignals, calls } = scriptedDatabase(40, 100);
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 5_000,
      busyLingerMs: 60_000,
      pollMs: 60_000,
    });
    try {
      // The first round (taking the lead) ends; nothing else is due for 5 s.
      await waitFor(() => calls.length === 1);
      const woken = Date.now();
      logSignals.inboxCommitted();
      await waitFor(() => calls.length === 2);
      assert.ok(calls[1]!.startedAt - woken < 500, "the local commit did not wake the leader");
      // Wake-ups while a round runs start no second round beside it (busyPollMs has not passed),
      // but they are not lost: one more round follows when it ends.
      logSignals.inboxCommitted();
      await new Promise((resolve) => setTimeout(resolve, 10));
      logSignals.inboxCommitted();
      logSignals.inboxCommitted();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(calls.length, 4, "expected one round for the wake-ups during a round");
      assert.ok(calls.every((call) => call.concurrent === 1));
      assert.ok(calls[3]!.startedAt >= calls[2]!.endedAt);
      // A commit announced to another database's signals wakes nobody here.
      const { logSignals: other } = scriptedDatabase(1, 0);
      other.inboxCommitted();
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(calls.length, 4);
    } finally {
      await sequencer.stop();
    }
  });

  test("every round that stamped announces its head to this process", async () => {
    const { db, logSignals, calls } = scriptedDatabase(5, 3);
    const heads: number[] = [];
    const stopListening = logSignals.onLogStamped((head) => heads.push(head));
    const sequencer = await startSequencer({
      db,
      logSignals,
      logger,
      busyPollMs: 10,
      pollMs: 60_000,
    });
    await runUntil(calls, 5, sequencer);
    stopListening();
    assert.deepEqual(heads, [1, 2, 3]);
  });
});

async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
