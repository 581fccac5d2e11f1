/**
 * readLogWindow, the delivery engine's read of the log: the events it returns are the ones the
 * driver's own row parsing gives (the page comes back as one JSON text), and its SQL pre-filter
 * (entity, source, element, event type, onFields) never drops an event matchesSubscription keeps.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import type { EventSource, EventType, NewChangeEvent } from "../../src/domain/change-event.js";
import { EVENT_SOURCES, EVENT_TYPES_BY_SOURCE } from "../../src/domain/change-event.js";
import type { MatchCriteria } from "../../src/domain/subscription-matching.js";
import { matchesSubscription } from "../../src/domain/subscription-matching.js";
import { appendChangeEvents, readLog } from "../../src/storage/change-event-repository.js";
import { readLogWindow } from "../../src/storage/delivery-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const FIELDS = ["firstName", "counter", "tier", "a.b", "x y"];
const ELEMENTS = ["1", "2"];

const sourceAndType = fc
  .constantFrom(...EVENT_SOURCES)
  .chain((source) =>
    fc.tuple(fc.constant(source), fc.constantFrom(...EVENT_TYPES_BY_SOURCE[source])),
  );

const arbitraryEvent = fc
  .record({
    entityId: fc.constantFrom(1, 2),
    sourceAndType,
    sourceId: fc.constantFrom(...ELEMENTS),
    recordKey: fc.constantFrom("1", "2", "3"),
    fields: fc.subarray(FIELDS),
    declaredEvents: fc.subarray(["shipped", "paid"]),
    counter: fc.integer(),
  })
  .map((e): NewChangeEvent => ({
    entityId: e.entityId,
    source: e.sourceAndType[0],
    sourceId: e.sourceId,
    eventType: e.sourceAndType[1],
    recordKey: e.recordKey,
    keys: { profileId: Number(e.recordKey) },
    state: { counter: e.counter, tier: "GOLD", "x y": [1, "a", true] },
    fields: e.fields,
    previous: { counter: e.counter - 1 },
    extra: { segment: { id: 3 } },
    version: e.counter,
    declaredEvents: e.declaredEvents,
    origin: { kind: "SYSTEM" },
  }));

const arbitraryCriteria = fc.record({
  entityId: fc.constantFrom(1, 2),
  sourceAndType,
  onElementId: fc.constantFrom(null, ...ELEMENTS),
  onFields: fc.subarray(FIELDS, { maxLength: 2 }),
});

for (const { backend, skip } of await testBackends()) {
  describe(`readLogWindow on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(() => t?.drop());

    test("returns what the driver's row parsing returns, and drops no matching event", async () => {
      const events = fc.sample(arbitraryEvent, { numRuns: 400, seed: 42 });
      await t.db.transaction((tx) => appendChangeEvents(tx, events));
      while ((await stampPendingEvents(t.db)).stamped > 0);
      const all = await readLog(t.db, 0, 1_000);
      assert.equal(all.length, events.length);
      const criteria = fc.sample(arbitraryCriteria, { numRuns: 60, seed: 7 });
      for (const c of criteria) {
        const sub: MatchCriteria = {
          entityId: c.entityId,
          on: c.sourceAndType[0] as EventSource,
          onElementId: c.onElementId,
          eventType: c.sourceAndType[1] as EventType,
          onFields: c.onFields,
          conditions: null,
        };
        const filter = {
          entityId: sub.entityId,
          source: sub.on,
          sourceId: sub.onElementId,
          eventType: sub.eventType,
          onFields: sub.onFields,
        };
        const read = await readLogWindow(t.db, 0, 1_000, 1_000, filter);
        const expected = all.filter((e) => matchesSubscription(sub, e));
        assert.deepEqual(
          read.filter((e) => matchesSubscription(sub, e)),
          expected,
          `criteria ${JSON.stringify(c)}`,
        );
        // Everything read is a candidate of the SQL filter, in log order, and parsed as the driver does.
        const byPosition = new Map(all.map((e) => [e.position, e]));
        for (const e of read) assert.deepEqual(e, byPosition.get(e.position));
        assert.deepEqual(
          read.map((e) => e.position),
          [...read.map((e) => e.position)].sort((a, b) => a - b),
        );
      }
    });

    test("honours the window and the limit", async () => {
      const filter = {
        entityId: 1,
        source: "PROFILE_TABLE" as const,
        sourceId: null,
        eventType: "UPDATE" as const,
      };
      const everything = await readLogWindow(t.db, 0, 1_000, 1_000, filter);
      assert.ok(everything.length > 3);
      const [, second, third] = everything;
      const windowed = await readLogWindow(
        t.db,
        second!.position - 1,
        third!.position,
        1_000,
        filter,
      );
      assert.deepEqual(
        windowed.map((e) => e.position),
        [second!.position, third!.position],
      );
      assert.equal((await readLogWindow(t.db, 0, 1_000, 2, filter)).length, 2);
      assert.deepEqual(await readLogWindow(t.db, 1_000, 2_000, 10, filter), []);
    });
  });
}
