/**
 * LogFollower on a fake log: windows grow while few events come back and shrink when a page fills,
 * a full page cut short is continued from its last position, one window is read ahead, reading
 * starves without room and goes on when woken, a poke's head saves a read of the head, handed-over
 * events are taken instead of a read, and a window read for a replaced definition is read again.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LogConsumer, LogCursor, LogSource } from "../../src/delivery/log-follower.js";
import { LogFollower } from "../../src/delivery/log-follower.js";
import type { ChangeEvent } from "../../src/domain/change-event.js";

const PAGE = 10;

function event(position: number): ChangeEvent {
  return { position } as ChangeEvent;
}

interface Read {
  after: number;
  upTo: number;
  definition: string;
}

/**
 * A log of `head` positions whose events `kept` keeps (what a pre-filter would return). With
 * `manual`, each read waits until the test lets it return (`release`).
 */
function fakeLog(head: number, kept: (position: number) => boolean, manual = false) {
  const reads: Read[] = [];
  const waiting: (() => void)[] = [];
  let headReads = 0;
  let mostPending = 0;
  let definition = "v1";
  const source: LogSource<string> = {
    definition: () => definition,
    async read(after, upTo, limit, def) {
      reads.push({ after, upTo, definition: def });
      if (manual)
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          mostPending = Math.max(mostPending, waiting.length);
        });
      const events: ChangeEvent[] = [];
      for (let p = after + 1; p <= upTo && events.length < limit; p++)
        if (kept(p)) events.push(event(p));
      return events;
    },
    async head() {
      headReads++;
      return log.head;
    },
  };
  const log = {
    head,
    source,
    reads,
    headReads: () => headReads,
    setDefinition: (next: string) => (definition = next),
    /** Lets the oldest waiting read return. */
    release: () => waiting.shift()?.(),
    pendingReads: () => waiting.length,
    mostPending: () => mostPending,
  };
  return log;
}

interface Collector {
  taken: number[];
  room: boolean;
  roomAhead: boolean;
  windows: number;
  consumer: LogConsumer;
}

/** A consumer that takes everything and keeps it, with room as the test sets it. */
function collector(): Collector {
  const taken: number[] = [];
  const c: Collector = {
    taken,
    room: true,
    roomAhead: true,
    windows: 0,
    consumer: {
      prepare: () => Promise.resolve(),
      hasRoom: () => c.room,
      hasRoomAhead: () => c.roomAhead,
      accept(events: readonly ChangeEvent[], after: number) {
        for (const e of events) if (e.position > after) taken.push(e.position);
      },
      windowRead: () => c.windows++,
    } satisfies LogConsumer,
  };
  return c;
}

function cursorAt(start: number): LogCursor & { cursor: number } {
  const c = {
    cursor: start,
    readUpTo(position: number) {
      if (position > c.cursor) c.cursor = position;
    },
  };
  return c;
}

const outage = { failed: () => undefined, succeeded: () => undefined };

/** Waits until the follower's reading has ended (it is not reading any more). */
async function settled(follower: LogFollower<string>): Promise<void> {
  for (let i = 0; i < 10_000 && follower.mode === "reading"; i++)
    await new Promise((resolve) => setImmediate(resolve));
  assert.notEqual(follower.mode, "reading", "the reading never ended");
}

/** Lets the event loop run until `check` holds. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !check(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(check(), "never happened");
}

function follow(log: ReturnType<typeof fakeLog>, c = collector(), start = 0) {
  const cursor = cursorAt(start);
  const follower = new LogFollower(log.source, cursor, c.consumer, { pageSize: PAGE, outage });
  return { follower, cursor, c };
}

describe("LogFollower", () => {
  test("windows grow while sparse (up to five pages) and shrink to a page when one fills", async () => {
    // Positions 1..200 keep one event in twenty; 201..260 keep every event.
    const log = fakeLog(260, (p) => p > 200 || p % 20 === 0);
    const { follower, cursor, c } = follow(log);
    follower.poke();
    await settled(follower);
    assert.equal(follower.mode, "idle");
    assert.equal(cursor.cursor, 260);
    const widths = log.reads.map((r) => r.upTo - r.after);
    // The window read ahead is sized before the one it follows has come back.
    assert.deepEqual(
      widths.slice(0, 6),
      [10, 10, 20, 40, 50, 50],
      "sparse: doubling up to 5 pages",
    );
    const dense = log.reads.findIndex((r) => r.after >= 200);
    assert.ok(dense > 0);
    assert.ok(
      log.reads.slice(dense + 1).every((r) => r.upTo - r.after <= PAGE),
      "dense: back to one page",
    );
    assert.deepEqual(
      c.taken,
      Array.from({ length: 260 }, (_, i) => i + 1).filter((p) => p > 200 || p % 20 === 0),
    );
  });

  test("a full page cut short of its window is continued from its last position", async () => {
    const kept = (p: number) => p % 20 === 0 || (p > 100 && p <= 140);
    const log = fakeLog(200, kept);
    const { follower, c } = follow(log);
    follower.poke();
    await settled(follower);
    // By position 100 windows are wider than a page: the one over the dense stretch fills its page.
    const wide = log.reads.find((r) => r.after < 101 && r.upTo > 101);
    assert.ok(wide && wide.upTo - wide.after > PAGE, "a wide window over the dense stretch");
    const inWindow = Array.from({ length: wide.upTo - wide.after }, (_, i) => wide.after + i + 1);
    const lastOfPage = inWindow.filter(kept)[PAGE - 1]!;
    assert.ok(lastOfPage < wide.upTo, "the page stops short of its window");
    assert.ok(
      log.reads.some((r) => r.after === lastOfPage),
      "the next read starts after the page's last event",
    );
    assert.deepEqual(c.taken, Array.from({ length: 200 }, (_, i) => i + 1).filter(kept));
  });

  test("while behind, one window is read ahead: never more than two reads out", async () => {
    const log = fakeLog(100, () => true, true);
    const { follower, c } = follow(log);
    follower.poke(100);
    await until(() => log.pendingReads() === 2);
    assert.deepEqual(
      log.reads.map((r) => [r.after, r.upTo]),
      [
        [0, 10],
        [10, 20],
      ],
    );
    log.release();
    await until(() => log.pendingReads() === 2 && log.reads.length === 3);
    assert.deepEqual(c.taken.length, 10);
    assert.ok(follower.behind, "the first window stopped short of the head");
    for (let i = 0; i < 20 && follower.mode === "reading"; i++) {
      log.release();
      await new Promise((r) => setImmediate(r));
    }
    await settled(follower);
    assert.equal(c.taken.length, 100);
    assert.equal(follower.behind, false);
    assert.equal(log.mostPending(), 2);
  });

  test("no read ahead without room for it", async () => {
    const log = fakeLog(100, () => true, true);
    const c = collector();
    c.roomAhead = false;
    const { follower } = follow(log, c);
    follower.poke(100);
    await until(() => log.pendingReads() === 1);
    await new Promise((r) => setImmediate(r));
    assert.equal(log.reads.length, 1);
    follower.stop();
    log.release();
  });

  test("it starves without room and reads on from where it stopped when woken", async () => {
    const log = fakeLog(50, () => true);
    const c = collector();
    const { follower, cursor } = follow(log, c);
    c.consumer.windowRead = () => {
      c.windows++;
      if (c.windows === 2) c.room = false;
    };
    follower.poke();
    await settled(follower);
    assert.equal(follower.mode, "starved");
    assert.ok(follower.behind);
    assert.equal(cursor.cursor, 20);
    const readsWhileStarved = log.reads.length;
    follower.poke(); // still no room: nothing is read
    await settled(follower);
    assert.equal(follower.mode, "starved");
    assert.equal(log.reads.length, readsWhileStarved);
    c.room = true;
    follower.wake();
    await settled(follower);
    assert.equal(follower.mode, "idle");
    assert.equal(cursor.cursor, 50);
    assert.deepEqual(
      c.taken,
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(follower.backlogCaughtUp(), true, "a backlog was read to the head");
    assert.equal(follower.backlogCaughtUp(), false, "said once");
  });

  test("a poke's head saves reading the head until the cursor reaches it", async () => {
    const log = fakeLog(30, () => true);
    const { follower, cursor } = follow(log);
    follower.poke(30);
    await settled(follower);
    assert.equal(cursor.cursor, 30);
    assert.equal(log.headReads(), 1, "read once, at the end, to learn nothing more is there");

    const other = fakeLog(30, () => true);
    const second = follow(other);
    second.follower.poke();
    await settled(second.follower);
    assert.equal(other.headReads(), 2, "without a head: read before and after");
  });

  test("a poke while reading looks for a newer head before the reading ends", async () => {
    const log = fakeLog(20, () => true, true);
    const { follower, cursor } = follow(log);
    follower.poke();
    await until(() => log.pendingReads() === 2);
    log.head = 25; // committed meanwhile, announced without a head (a poll)
    follower.poke();
    while (follower.mode === "reading") {
      log.release();
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(cursor.cursor, 25);
  });

  test("handed-over events are taken instead of reading their window", async () => {
    const log = fakeLog(13, () => true);
    const { follower, c } = follow(log, collector(), 10);
    follower.poke(13, { after: 10, events: [event(11), event(12), event(13)] });
    await settled(follower);
    assert.deepEqual(c.taken, [11, 12, 13]);
    assert.deepEqual(log.reads, [], "nothing read from the log");
  });

  test("a window read for a definition replaced meanwhile is read again for the new one", async () => {
    const log = fakeLog(10, () => true, true);
    const { follower, c } = follow(log);
    follower.poke(10);
    await until(() => log.pendingReads() === 1);
    log.setDefinition("v2");
    log.release();
    await until(() => log.pendingReads() === 1);
    log.release();
    await settled(follower);
    assert.deepEqual(
      log.reads.map((r) => r.definition),
      ["v1", "v2"],
    );
    assert.equal(c.taken.length, 10, "each event taken once");
  });

  test("stopped: a read in flight is dropped and nothing more is read", async () => {
    const log = fakeLog(30, () => true, true);
    const { follower, c, cursor } = follow(log);
    follower.poke(30);
    await until(() => log.pendingReads() >= 1);
    follower.stop();
    while (log.pendingReads() > 0) log.release();
    await new Promise((r) => setImmediate(r));
    follower.poke(40);
    await new Promise((r) => setImmediate(r));
    assert.equal(follower.mode, "stopped");
    assert.deepEqual(c.taken, []);
    assert.equal(cursor.cursor, 0);
  });

  test("a failed reading is reported and the next poke reads again", async () => {
    const log = fakeLog(10, () => true);
    const failures: unknown[] = [];
    let fail = true;
    const read = log.source.read;
    log.source.read = (...args) => (fail ? Promise.reject(new Error("down")) : read(...args));
    const c = collector();
    const cursor = cursorAt(0);
    const follower = new LogFollower(log.source, cursor, c.consumer, {
      pageSize: PAGE,
      outage: { failed: (error) => failures.push(error), succeeded: () => undefined },
    });
    follower.poke(10);
    await settled(follower);
    assert.equal(failures.length, 1);
    assert.equal(follower.mode, "idle");
    fail = false;
    follower.poke();
    await settled(follower);
    assert.equal(cursor.cursor, 10);
    assert.equal(c.taken.length, 10);
  });
});
