/**
 * How the leader paces its stamping rounds, against a scripted database whose stamping call takes
 * a chosen time (no server needed): in busy mode rounds start `busyPollMs` apart, counted from the
 * start of the previous round, so a round slower than that (a commit waiting for the WAL flush) is
 * followed at once instead of by a further pause.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer-service.js";
import { startSequencer } from "../../src/sequencer/sequencer-service.js";
import type { AdvisoryLock, Database, QueryResult } from "../../src/storage/database.js";

interface Call {
  startedAt: number;
  endedAt: number;
  stamped: number;
}

/** A database whose stamping call lasts `callMs` and finds one event on each of the first `busyCalls` calls. */
function scriptedDatabase(callMs: number, busyCalls: number): { db: Database; calls: Call[] } {
  const calls: Call[] = [];
  let head = 0;
  const lock: AdvisoryLock = { release: async () => {}, lost: new Promise<Error>(() => {}) };
  const db: Database = {
    kind: "postgres",
    async query<T>(sql: string): Promise<QueryResult<T>> {
      assert.match(sql, /herald_stamp_batch/);
      const startedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, callMs));
      const stamped = calls.length < busyCalls ? 1 : 0;
      head += stamped;
      calls.push({ startedAt, endedAt: Date.now(), stamped });
      return { rows: [{ stamped, head, max_lag_ms: 0 } as T], rowCount: 1 };
    },
    exec: async () => {},
    transaction: () => Promise.reject(new Error("not used by the sequencer")),
    listen: async () => async () => {},
    tryAdvisoryLock: async () => lock,
    close: async () => {},
  };
  return { db, calls };
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
    const { db, calls } = scriptedDatabase(120, 4);
    const sequencer = await startSequencer({ db, logger, busyPollMs: 100, pollMs: 60_000 });
    await runUntil(calls, 5, sequencer);
    // Calls 2..4 follow rounds that found work and lasted 120 ms > 100 ms: no pause between them.
    for (let i = 1; i < 4; i++) {
      const gap = calls[i]!.startedAt - calls[i - 1]!.endedAt;
      assert.ok(gap < 60, `pause of ${gap} ms before call ${i + 1}; expected none`);
    }
  });

  test("a quicker round waits out the rest of busyPollMs, counted from its start", async () => {
    const { db, calls } = scriptedDatabase(20, 4);
    const sequencer = await startSequencer({ db, logger, busyPollMs: 150, pollMs: 60_000 });
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
});
