/**
 * The in-process shortcuts of the change log (LogSignals): stamping rounds are counted per signals
 * object (one per database), and the workers waiting for them are told once none runs any more (a
 * NOTIFY held meanwhile is then announced: see delivery-worker.ts); the inbox NOTIFY is paced.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { INBOX_NOTIFY_INTERVAL_MS } from "../../src/storage/log-channels.js";
import { LogSignals } from "../../src/storage/log-signals.js";

describe("log signals", () => {
  test("rounds are counted per signals object; the end is told once none runs", () => {
    const signals = new LogSignals();
    const other = new LogSignals();
    let ends = 0;
    const stop = signals.onStampingRoundsEnded(() => ends++);
    const first = signals.stampingRound();
    const second = signals.stampingRound();
    other.stampingRound();
    assert.equal(signals.stampingRoundsInFlight(), 2);
    first();
    first(); // ending twice counts once
    assert.equal(signals.stampingRoundsInFlight(), 1);
    assert.equal(ends, 0);
    second();
    assert.equal(signals.stampingRoundsInFlight(), 0);
    assert.equal(ends, 1);
    stop();
    signals.stampingRound()();
    assert.equal(ends, 1);
    assert.equal(other.stampingRoundsInFlight(), 1);
  });

  test("stamped events are wanted while a listener of those signals wants them", () => {
    const signals = new LogSignals();
    assert.equal(signals.wantsStampedEvents(), false);
    let driving = false;
    const stop = signals.onLogStamped(
      () => {},
      () => driving,
    );
    assert.equal(
      signals.wantsStampedEvents(),
      false,
      "a worker driving nothing has no use for them",
    );
    driving = true;
    assert.equal(signals.wantsStampedEvents(), true);
    assert.equal(new LogSignals().wantsStampedEvents(), false);
    stop();
    assert.equal(signals.wantsStampedEvents(), false);
  });

  test("a head and a commit reach the listeners of the same signals only", async () => {
    const signals = new LogSignals();
    const other = new LogSignals();
    const heads: number[] = [];
    let commits = 0;
    signals.onLogStamped((head) => heads.push(head));
    signals.onInboxCommitted(() => commits++);
    other.logStamped(7);
    other.inboxCommitted();
    signals.logStamped(3);
    assert.equal(await signals.committingEvents(async () => "written"), "written");
    await assert.rejects(
      signals.committingEvents(() => Promise.reject(new Error("rolled back"))),
      /rolled back/,
    );
    assert.deepEqual(heads, [3]);
    assert.equal(commits, 1, "a write that failed wakes nobody");
  });

  test("the inbox NOTIFY is taken at most once per interval, per signals object", async () => {
    const signals = new LogSignals();
    assert.equal(signals.takeInboxNotifyTurn(), true);
    assert.equal(signals.takeInboxNotifyTurn(), false);
    assert.equal(new LogSignals().takeInboxNotifyTurn(), true);
    await new Promise((resolve) => setTimeout(resolve, INBOX_NOTIFY_INTERVAL_MS + 2));
    assert.equal(signals.takeInboxNotifyTurn(), true);
  });
});
