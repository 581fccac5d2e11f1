import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { RecordScheduler } from "../../src/delivery/record-scheduler.js";
import { WatermarkTracker } from "../../src/delivery/watermark-tracker.js";

interface Item {
  key: string;
  position: number;
}

describe("per-record scheduler", () => {
  test("one record's events leave one batch at a time, in order; other records go in parallel", () => {
    const s = new RecordScheduler<Item>();
    s.enqueue({ key: "a", position: 1 });
    s.enqueue({ key: "b", position: 2 });
    s.enqueue({ key: "a", position: 3 });
    const first = s.take(1);
    const second = s.take(1);
    assert.deepEqual(first, [{ key: "a", position: 1 }]);
    assert.deepEqual(second, [{ key: "b", position: 2 }]);
    assert.deepEqual(s.take(1), [], "a is busy: its position 3 must wait");
    s.complete(second);
    assert.deepEqual(s.take(5), [], "completing b does not release a");
    s.complete(first);
    assert.deepEqual(s.take(5), [{ key: "a", position: 3 }]);
    assert.equal(s.size, 1);
  });

  test("a completed batch may hold a record's items apart: each record drops all of its own", () => {
    const s = new RecordScheduler<Item>();
    for (const [key, position] of [
      ["a", 1],
      ["b", 2],
      ["a", 3],
      ["a", 4],
    ] as const)
      s.enqueue({ key, position });
    const batch = s.take(10);
    assert.equal(batch.length, 4);
    // The items of a and b interleaved, as a caller might hand them back.
    s.complete([batch[0]!, batch[3]!, batch[2]!, batch[1]!]);
    assert.equal(s.size, 0);
    assert.equal(s.readyRecords, 0);
    s.enqueue({ key: "a", position: 5 });
    assert.deepEqual(s.take(10), [{ key: "a", position: 5 }]);
  });

  test("property: under any interleaving of completions (retries = late completions), each record's items leave in order and never two batches of one record at once", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 4 }),
        (recordOfEvent, choices, batch) => {
          const s = new RecordScheduler<Item>();
          recordOfEvent.forEach((r, i) => s.enqueue({ key: `r${r}`, position: i + 1 }));
          const inFlight: Item[][] = [];
          const sent = new Map<string, number[]>();
          let c = 0;
          let guard = 0;
          while ((s.size > 0 || inFlight.length > 0) && guard++ < 10_000) {
            const choice = choices[c++ % choices.length] as number;
            const taken = choice % 2 === 0 || inFlight.length === 0 ? s.take(batch) : [];
            if (taken.length > 0) {
              for (const b of inFlight)
                for (const item of taken)
                  assert.ok(
                    !b.some((x) => x.key === item.key),
                    "two batches of one record in flight",
                  );
              inFlight.push(taken);
              for (const item of taken) {
                const list = sent.get(item.key) ?? [];
                list.push(item.position);
                sent.set(item.key, list);
              }
            } else if (inFlight.length > 0) {
              const [done] = inFlight.splice(choice % inFlight.length, 1);
              s.complete(done as Item[]);
            }
          }
          assert.equal(s.size, 0);
          for (const [key, positions] of sent) {
            const expected = recordOfEvent
              .map((r, i) => [`r${r}`, i + 1] as const)
              .filter(([k]) => k === key)
              .map(([, p]) => p);
            assert.deepEqual(positions, expected);
          }
        },
      ),
    );
  });

  test("the watermark only covers a contiguous prefix of finished positions", () => {
    const w = new WatermarkTracker(10);
    for (const p of [11, 13, 14]) w.add(p);
    w.readUpTo(15);
    assert.equal(w.safe, 10);
    w.finish(13);
    w.finish(14);
    assert.equal(w.safe, 10, "11 is unfinished");
    w.finish(11);
    assert.equal(w.safe, 15, "12 and 15 did not match: finished by definition");
  });
});
