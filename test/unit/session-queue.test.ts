import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SessionQueue } from "../../src/storage/session-queue.js";

/**
 * A clock that only moves when an operation "runs": each operation takes 1 ms of synchronous work,
 * as a statement does in PGlite's WebAssembly, so slices are counted exactly.
 */
function fakeSession(sliceMs = 5) {
  let now = 0;
  const queue = new SessionQueue({ sliceMs }, () => now);
  const statement = () =>
    queue.run(async () => {
      now += 1;
    });
  return { queue, statement, clock: () => now };
}

describe("SessionQueue", () => {
  test("operations run one at a time, first come first served", async () => {
    const { queue } = fakeSession();
    const order: number[] = [];
    let running = 0;
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        queue.run(async () => {
          running++;
          assert.equal(running, 1, "one operation at a time");
          await Promise.resolve();
          order.push(i);
          running--;
        }),
      ),
    );
    assert.deepEqual(
      order,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  test("the event loop gets a turn after each slice, however many operations wait", async () => {
    const { statement } = fakeSession(5);
    let done = 0;
    const all = Array.from({ length: 200 }, () => statement().then(() => done++));
    // Without slices the whole queue ran as one chain of promise callbacks before any I/O or
    // timer callback: this would see 200.
    const seen = await new Promise<number>((resolve) => setImmediate(() => resolve(done)));
    await Promise.all(all);
    assert.ok(seen <= 6, `a turn came after at most one slice of work (${seen} operations)`);
    assert.equal(done, 200);
  });

  test("a caller that issues its statements one after another is sliced too", async () => {
    const { statement } = fakeSession(5);
    let done = 0;
    const chain = (async () => {
      // The next statement comes back to an idle session within the same turn: it still counts
      // in the slice, so this cannot keep the event loop from other work.
      for (let i = 0; i < 200; i++) {
        await statement();
        done++;
      }
    })();
    const turns: number[] = [];
    const ticking = (async () => {
      while (done < 200) {
        await new Promise((resolve) => setImmediate(resolve));
        turns.push(done);
      }
    })();
    await Promise.all([chain, ticking]);
    assert.ok(turns[0]! <= 6, `the first turn came after one slice (${turns[0]})`);
    assert.ok(turns.length >= 200 / 6, `the loop turned all along (${turns.length} turns)`);
  });

  test("oldestWaitMs is how long the first waiting operation has waited", async () => {
    let now = 100;
    const queue = new SessionQueue({ sliceMs: 5 }, () => now);
    assert.equal(queue.oldestWaitMs(), 0);
    let finish!: () => void;
    const holding = queue.run(() => new Promise<void>((resolve) => (finish = resolve)));
    await Promise.resolve();
    const waiting = queue.run(async () => {});
    now = 350;
    assert.equal(queue.oldestWaitMs(), 250);
    assert.equal(queue.length, 1);
    finish();
    await Promise.all([holding, waiting]);
    assert.equal(queue.oldestWaitMs(), 0);
  });

  test("an operation that throws frees the session for the next", async () => {
    const { queue } = fakeSession();
    const failing = queue.run(async () => {
      throw new Error("no such table");
    });
    const next = queue.run(async () => "ran");
    await assert.rejects(failing, /no such table/);
    assert.equal(await next, "ran");
  });
});
