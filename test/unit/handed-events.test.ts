/**
 * HandedEvents: a runner takes a window from the events its process's sequencer handed over only when
 * the window begins exactly where a handed range begins, the range is whole and dense, and fits the
 * window and the page; anything else is read from the log.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChangeEvent } from "../../src/domain/change-event.js";
import { HandedEvents } from "../../src/delivery/handed-events.js";
import type { StampedEvents } from "../../src/storage/log-channels.js";

function range(after: number, count: number): StampedEvents {
  const events = Array.from(
    { length: count },
    (_, i) => ({ position: after + i + 1 }) as ChangeEvent,
  );
  return { after, events };
}

describe("HandedEvents", () => {
  test("a window that begins where a handed range begins is that range", () => {
    const handed = new HandedEvents();
    const stamped = range(10, 3);
    handed.offer(stamped, 10);
    const window = handed.window(10, 100, 1000);
    assert.equal(window?.upTo, 13);
    assert.equal(window?.events, stamped.events);
    // Not consumed: the same window asked again (a re-read for a changed definition) is the same.
    assert.equal(handed.window(10, 100, 1000)?.upTo, 13);
  });

  test("a window that begins elsewhere, ends before the range does, or is smaller than it: read", () => {
    const handed = new HandedEvents();
    handed.offer(range(10, 3), 5);
    assert.equal(handed.window(9, 100, 1000), undefined);
    assert.equal(handed.window(11, 100, 1000), undefined);
    assert.equal(handed.window(10, 12, 1000), undefined, "the window ends inside the range");
    assert.equal(handed.window(10, 100, 2), undefined, "more events than a page");
    assert.equal(handed.window(10, 13, 3)?.upTo, 13);
  });

  test("ranges behind the reading are never kept, and dropped once it passes them", () => {
    const handed = new HandedEvents();
    handed.offer(range(10, 3), 13);
    assert.equal(handed.size, 0);
    handed.offer(range(13, 2), 12);
    handed.offer(range(15, 2), 12);
    assert.equal(handed.size, 2);
    assert.equal(handed.window(15, 100, 1000)?.upTo, 17);
    assert.equal(handed.size, 1, "the range up to 15 is behind a read that starts at 15");
  });

  test("a range whose events are not exactly its positions is refused", () => {
    const handed = new HandedEvents();
    const gap = range(20, 3);
    (gap.events as ChangeEvent[])[1] = { position: 23 } as ChangeEvent;
    handed.offer(gap, 0);
    const shuffled = range(30, 2);
    (shuffled.events as ChangeEvent[]).reverse();
    handed.offer(shuffled, 0);
    handed.offer({ after: 40, events: [] }, 0);
    assert.equal(handed.size, 0);
  });

  test("holds at most 16 ranges, the newest", () => {
    const handed = new HandedEvents();
    for (let i = 0; i < 40; i++) handed.offer(range(i * 2, 2), 0);
    assert.equal(handed.size, 16);
    assert.equal(handed.window(0, 1000, 1000), undefined);
    assert.equal(handed.window(78, 1000, 1000)?.upTo, 80);
  });
});
