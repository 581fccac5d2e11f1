import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { AttributeMap } from "../../src/domain/change-event.js";
import {
  applyAttributes,
  applySegments,
  applySubscriptions,
} from "../../src/domain/record-change.js";

const NAMES = ["a", "b", "c", "d"] as const;
const stored = fc.oneof(
  fc.constant(null),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom("x", "y", ""),
  fc.boolean(),
  fc.array(fc.constantFrom("p", "q"), { maxLength: 2 }),
);
const record = fc.dictionary(fc.constantFrom(...NAMES), stored) as fc.Arbitrary<AttributeMap>;
/** A record as stored: attributes without a value are absent, never null. */
const storedRecord = record.map((raw) => applyAttributes({}, raw).after);

describe("record change", () => {
  test("a write applied twice changes nothing the second time (no-op detection)", () => {
    fc.assert(
      fc.property(record, record, (before, provided) => {
        const first = applyAttributes(before, provided);
        const second = applyAttributes(first.after, provided);
        assert.deepEqual(second.changed, []);
        assert.deepEqual(second.after, first.after);
      }),
    );
  });

  test("previous values restore the record; unchanged attributes keep their value", () => {
    fc.assert(
      fc.property(storedRecord, record, (before, provided) => {
        const { after, changed, previous } = applyAttributes(before, provided);
        const restored = applyAttributes(after, previous).after;
        const clean = (m: AttributeMap) =>
          Object.fromEntries(
            Object.entries(m).filter(
              ([, v]) => v !== null && !(Array.isArray(v) && v.length === 0) && v !== "",
            ),
          );
        assert.deepEqual(clean(restored), clean(before));
        for (const name of NAMES)
          if (!changed.includes(name) && !(name in provided))
            assert.deepEqual(after[name], before[name]);
        assert.ok(Object.values(after).every((v) => v !== null));
      }),
    );
  });

  test("a segmentation holds at most one segment; every change is reported, moves as leave + join", () => {
    const request = fc.array(
      fc.record({
        segmentation: fc.constantFrom("S", "T"),
        segment: fc.constantFrom("g1", "g2", "g3"),
        belongs: fc.boolean(),
      }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(request, (requested) => {
        const { after, changes } = applySegments({}, requested);
        // Replaying the reported changes on an empty membership gives the same result.
        const replay: Record<string, string> = {};
        for (const c of changes) {
          if (c.belongs) {
            assert.equal(replay[c.segmentation], undefined, "joined without leaving first");
            replay[c.segmentation] = c.segment;
          } else {
            assert.equal(replay[c.segmentation], c.segment, "left a segment it was not in");
            delete replay[c.segmentation];
          }
        }
        assert.deepEqual(replay, after);
      }),
    );
  });

  test("subscriptions report only real changes", () => {
    const { after, changes } = applySubscriptions({ news: true }, [
      { subscriptionName: "news", subscribe: true },
      { subscriptionName: "promo", subscribe: false },
      { subscriptionName: "promo", subscribe: true },
      { subscriptionName: "news", subscribe: false },
    ]);
    assert.deepEqual(after, { promo: true });
    assert.deepEqual(changes, [
      { subscriptionName: "promo", subscribe: true },
      { subscriptionName: "news", subscribe: false },
    ]);
  });
});
