/**
 * The in-process shortcuts of the log channels: stamping rounds are counted per database, and the
 * workers waiting for them are told once none runs any more (a NOTIFY held meanwhile is then
 * announced: see delivery-worker.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Database } from "../../src/storage/database.js";
import {
  onLogStamped,
  onStampingRoundsEnded,
  stampingRound,
  stampingRoundsInFlight,
  wantsStampedEvents,
} from "../../src/storage/log-channels.js";

const fakeDatabase = (): Database => ({ kind: "postgres" }) as Database;

describe("log channels", () => {
  test("rounds are counted per database; the end is told once none runs", () => {
    const db = fakeDatabase();
    const other = fakeDatabase();
    let ends = 0;
    const stop = onStampingRoundsEnded(db, () => ends++);
    const first = stampingRound(db);
    const second = stampingRound(db);
    stampingRound(other);
    assert.equal(stampingRoundsInFlight(db), 2);
    first();
    first(); // ending twice counts once
    assert.equal(stampingRoundsInFlight(db), 1);
    assert.equal(ends, 0);
    second();
    assert.equal(stampingRoundsInFlight(db), 0);
    assert.equal(ends, 1);
    stop();
    stampingRound(db)();
    assert.equal(ends, 1);
    assert.equal(stampingRoundsInFlight(other), 1);
  });

  test("stamped events are wanted while a listener of that database wants them", () => {
    const db = fakeDatabase();
    assert.equal(wantsStampedEvents(db), false);
    let driving = false;
    const stop = onLogStamped(
      db,
      () => {},
      () => driving,
    );
    assert.equal(wantsStampedEvents(db), false, "a worker driving nothing has no use for them");
    driving = true;
    assert.equal(wantsStampedEvents(db), true);
    assert.equal(wantsStampedEvents(fakeDatabase()), false);
    stop();
    assert.equal(wantsStampedEvents(db), false);
  });
});
