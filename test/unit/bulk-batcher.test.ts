import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { BulkBatcher } from "../../src/delivery/bulk-batcher.js";

describe("BULK batcher", () => {
  const limits = { maxBlockSize: 3, lingerMs: 100, maxWaitMs: 1000 };

  test("a full block is due at once and never exceeds maxBlockSize", () => {
    const b = new BulkBatcher<number>(limits);
    b.add([1, 2], 0);
    assert.equal(b.isDue(0), false);
    assert.equal(b.room, 1);
    assert.throws(() => b.add([3, 4], 0), RangeError);
    b.add([3], 0);
    assert.equal(b.isDue(0), true);
    assert.deepEqual(b.take(), [1, 2, 3]);
    assert.equal(b.length, 0);
    assert.equal(b.dueAt(), undefined);
  });

  test("a partial block leaves lingerMs after its last item", () => {
    const b = new BulkBatcher<number>(limits);
    b.add([1], 0);
    b.add([2], 60);
    assert.equal(b.dueAt(), 160);
    assert.equal(b.isDue(159), false);
    assert.equal(b.isDue(160), true);
  });

  test("a steady trickle is capped by maxWaitMs from the oldest item", () => {
    const b = new BulkBatcher<number>({ maxBlockSize: 1000, lingerMs: 100, maxWaitMs: 250 });
    for (let t = 0; t <= 240; t += 80) b.add([t], t);
    assert.equal(b.dueAt(), 250);
    assert.equal(b.isDue(249), false);
    assert.equal(b.isDue(250), true);
  });

  test("property: due time is min(last + linger, first + maxWait); blocks hold at most maxBlockSize", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 60 }),
        (maxBlockSize, lingerMs, maxWaitMs, gaps) => {
          const b = new BulkBatcher<number>({ maxBlockSize, lingerMs, maxWaitMs });
          let now = 0;
          let first: number | undefined;
          for (const gap of gaps) {
            now += gap;
            if (b.room === 0) {
              assert.ok(b.take().length <= maxBlockSize);
              first = undefined;
            }
            b.add([now], now);
            first ??= now;
            assert.equal(b.dueAt(), Math.min(now + lingerMs, first + maxWaitMs));
            assert.ok(b.length <= maxBlockSize);
          }
        },
      ),
    );
  });
});
