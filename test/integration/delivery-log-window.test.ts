/**
 * readLogWindow, the delivery engine's read of the log: the events it returns are the ones the
 * driver's own row parsing gives (the page comes back as one JSON text), and its SQL pre-filter
 * (entity, source, element, event type, onFields) never drops an event matchesSubscription keeps.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import type {
  ChangeEvent,
  EventSource,
  EventType,
  NewChangeEvent,
} from "../../src/domain/change-event.js";
import { EVENT_SOURCES, EVENT_TYPES_BY_SOURCE } from "../../src/domain/change-event.js";
import type { MatchCriteria } from "../../src/domain/subscription-matching.js";
import { matchesSubscription } from "../../src/domain/subscription-matching.js";
import { DataTextWriter, toDataObject } from "../../src/domain/event-payload.js";
import {
  appendChangeEvents,
  readLog,
  readLogHead,
} from "../../src/storage/change-event-repository.js";
import { prerenderedParts } from "../../src/storage/log-page-codec.js";
import { readLogWindow } from "../../src/storage/log-window-reader.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

/** One writer for every check here, as an encoder keeps one across pushes. */
const dataTexts = new DataTextWriter();

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

/** Every field of an event as a plain object (readLogWindow's events parse their JSON on first use). */
function plain(e: ChangeEvent): ChangeEvent {
  return {
    id: e.id,
    position: e.position,
    entityId: e.entityId,
    source: e.source,
    sourceId: e.sourceId,
    eventType: e.eventType,
    recordKey: e.recordKey,
    keys: e.keys,
    state: e.state,
    fields: e.fields,
    previous: e.previous,
    extra: e.extra,
    version: e.version,
    declaredEvents: e.declaredEvents,
    origin: e.origin,
    occurredAt: e.occurredAt,
  };
}

for (const { backend, skip } of await testBackends()) {
  describe(`readLogWindow on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(() => t?.drop());

    test("returns what the driver's row parsing returns, and drops no matching event", async () => {
      const events = fc.sample(arbitraryEvent, { numRuns: 400, seed: 42 });
      await t.db.transaction((tx) => appendChangeEvents(tx, events, t.logSignals));
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
          read.filter((e) => matchesSubscription(sub, e)).map(plain),
          expected,
          `criteria ${JSON.stringify(c)}`,
        );
        // Everything read is a candidate of the SQL filter, in log order, and parsed as the driver does.
        const byPosition = new Map(all.map((e) => [e.position, e]));
        for (const e of read) assert.deepEqual(plain(e), byPosition.get(e.position));
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

    test("a page of more than a thousand events (read in several texts) is whole and in order", async () => {
      const entityId = 7;
      const written = Array.from({ length: 1_100 }, (_, i): NewChangeEvent => ({
        entityId,
        source: "PROFILE_TABLE",
        sourceId: "1",
        eventType: "UPDATE",
        recordKey: String(i % 13),
        keys: { profileId: i % 13 },
        state: { counter: i },
        fields: ["counter"],
        previous: { counter: i - 1 },
        extra: {},
        version: i + 1,
        declaredEvents: [],
        origin: { kind: "SYSTEM" },
      }));
      const from = await readLogHead(t.db);
      await t.db.transaction((tx) => appendChangeEvents(tx, written, t.logSignals));
      while ((await stampPendingEvents(t.db)).stamped > 0);
      const head = await readLogHead(t.db);
      const filter = {
        entityId,
        source: "PROFILE_TABLE" as const,
        sourceId: "1",
        eventType: "UPDATE" as const,
      };
      for (const limit of [255, 256, 257, 768, 769, 1_100]) {
        for (const lean of [false, true]) {
          const read = await readLogWindow(t.db, from, head, limit, {
            ...filter,
            ...(lean ? { conditions: null, includePrevious: false } : {}),
          });
          assert.equal(read.length, limit);
          assert.deepEqual(
            read.map((e) => (e.state as { counter: number }).counter),
            Array.from({ length: limit }, (_, i) => i),
          );
          const positions = read.map((e) => e.position);
          assert.deepEqual(
            positions,
            [...positions].sort((a, b) => a - b),
          );
        }
      }
    });

    test("push payloads built from the page's texts are the ones built from whole events", async () => {
      const entityId = 5;
      const oddTexts = ["plain", "a\tb", "line\nbreak", 'quo"te', "back\\slash", "ünï", "😀 x", ""];
      const stamps = [
        "2026-12-01 01:58:47+00",
        "2026-12-01 01:58:47.5+00",
        "2026-12-01 01:58:47.123456+00",
        "2026-12-01 01:58:47.999999+00",
        "0999-03-01 00:00:00.25+00",
      ];
      const odd = fc.record({
        custom: fc.boolean(),
        key: fc.constantFrom(...oddTexts),
        text: fc.constantFrom(...oddTexts),
        number: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
        fields: fc.subarray(["firstName", "score", "tags", "nested", "flag", "missing", "0"]),
        origin: fc.constantFrom(
          { kind: "SYSTEM" as const },
          { kind: "API_KEY" as const, apiKeyId: 3, apiKeyName: 'k"1\t' },
        ),
        declaredEvents: fc.constantFrom([], ["shipped"], ["a\nb", "paid"]),
        version: fc.option(fc.nat()),
      });
      const written = fc.sample(odd, { numRuns: 120, seed: 11 }).map((e, i): NewChangeEvent => ({
        entityId,
        source: e.custom ? "CUSTOM_TABLE" : "PROFILE_TABLE",
        sourceId: e.custom ? `orders ${e.key}` : "1",
        eventType: "UPDATE",
        recordKey: e.custom ? e.key : String(i),
        keys: e.custom ? { orderId: e.key } : { profileId: i, emailAddress: `${e.text}@x.y` },
        state: {
          firstName: e.text,
          score: e.number,
          tags: [1, e.text, true],
          // Not a value Herald writes, but a stored one is rendered, never trusted.
          nested: { a: [e.number] } as unknown as string,
          flag: false,
          0: "zero",
        },
        fields: e.fields,
        previous: { firstName: "before", score: 1 },
        extra: {},
        version: e.version,
        declaredEvents: [...e.declaredEvents],
        origin: e.origin,
      }));
      const from = await readLogHead(t.db);
      await t.db.transaction((tx) => appendChangeEvents(tx, written, t.logSignals));
      while ((await stampPendingEvents(t.db)).stamped > 0);
      const head = await readLogHead(t.db);
      for (let i = 0; i < stamps.length; i++)
        await t.db.query(
          "UPDATE change_events SET occurred_at = $1 WHERE entity_id = $2 AND position % $3 = $4",
          [stamps[i], entityId, stamps.length, i],
        );
      // Years past 9999 take the JSON path (and the same Date as before): only compared with ourselves.
      await t.db.query(
        "UPDATE change_events SET occurred_at = '10001-01-01 00:00:00+00' WHERE position = $1",
        [head],
      );
      const whole = new Map((await readLog(t.db, from, 1_000)).map((e) => [e.position, e]));
      let pushed = 0;
      for (const [source, sourceId] of [
        ["PROFILE_TABLE", "1"],
        ["CUSTOM_TABLE", null],
      ] as const) {
        const filter = { entityId, source, sourceId, eventType: "UPDATE" as const };
        const read = await readLogWindow(t.db, from, head, 1_000, filter);
        const lean = await readLogWindow(t.db, from, head, 1_000, {
          ...filter,
          conditions: null,
          includePrevious: false,
        });
        assert.deepEqual(
          lean.map((e) => e.position),
          read.map((e) => e.position),
        );
        for (const [i, e] of read.entries()) {
          const parts = prerenderedParts(e);
          assert.ok(parts, "readLogWindow's events carry their _event texts");
          const reference = e.position === head ? plain(e) : whole.get(e.position)!;
          for (const includePrevious of [false, true]) {
            const options = { entityName: "acme", includePrevious };
            const expected = JSON.stringify(toDataObject(reference, options));
            assert.equal(dataTexts.dataText(e, options, parts), expected, `event ${e.position}`);
          }
          const options = { entityName: "acme", includePrevious: false };
          const leanEvent = lean[i]!;
          assert.equal(
            dataTexts.dataText(leanEvent, options, prerenderedParts(leanEvent)),
            JSON.stringify(toDataObject(reference, options)),
            `lean event ${e.position}`,
          );
          // A lean state holds the changed attributes' values (a missing one as null).
          const shown = reference.fields.length <= 2 ? reference.fields : [];
          for (const name of shown) {
            const value = (reference.state as Record<string, unknown>)[name];
            assert.deepEqual(
              (leanEvent.state as Record<string, unknown>)[name],
              value === undefined ? null : value,
              `lean state of ${e.position}: ${name}`,
            );
          }
          if (reference.fields.length > 2) assert.deepEqual(leanEvent.state, reference.state);
          pushed++;
        }
      }
      assert.equal(pushed, written.length);
    });
  });
}
