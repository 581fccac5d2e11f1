/**
 * A stamping round hands the events it stamped to the workers of its process (migration 011): they
 * must be exactly the events the log holds at those positions, all of them and nothing else, so that
 * a push built from them is the push a read of the log would have built.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ChangeEvent, NewChangeEvent } from "../../src/domain/change-event.js";
import { DataTextWriter, toDataObject } from "../../src/domain/event-payload.js";
import {
  appendChangeEvents,
  readLog,
  readLogHead,
} from "../../src/storage/change-event-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

/** One writer for every check here, as an encoder keeps one across pushes. */
const dataTexts = new DataTextWriter();

const ODD_TEXTS = ["plain", "a\tb", "line\nbreak", 'quo"te', "back\\slash", "ünï", "😀 x", ""];

function oddEvent(i: number): NewChangeEvent {
  const text = ODD_TEXTS[i % ODD_TEXTS.length]!;
  const custom = i % 3 === 0;
  return {
    entityId: 7,
    source: custom ? "CUSTOM_TABLE" : "PROFILE_TABLE",
    sourceId: custom ? `orders ${text}` : "1",
    eventType: i % 4 === 0 ? "CREATE" : "UPDATE",
    recordKey: custom ? text : String(i),
    keys: custom ? { orderId: text } : { profileId: i, emailAddress: `${text}@x.y` },
    state: { firstName: text, score: i / 3, big: 2 ** 53 - 1, tags: [1, text, true], flag: false },
    fields: ["firstName", "score"].slice(0, 1 + (i % 2)),
    previous: { firstName: "before" },
    extra: i % 5 === 0 ? { segment: { id: 3 } } : {},
    version: i % 6 === 0 ? null : i,
    declaredEvents: i % 2 ? ["shipped"] : [],
    origin: i % 2 ? { kind: "API_KEY", apiKeyId: 3, apiKeyName: 'k"1\t' } : { kind: "SYSTEM" },
  };
}

/** Every field of an event as a plain object. */
function plain(e: ChangeEvent): ChangeEvent {
  return { ...e };
}

for (const { backend, skip } of await testBackends()) {
  describe(`stamp hand-off on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(() => t?.drop());

    test("a round hands over exactly what it stamped, as a read of the log returns it", async () => {
      const from = await readLogHead(t.db);
      await t.db.transaction((tx) =>
        appendChangeEvents(
          tx,
          Array.from({ length: 24 }, (_, i) => oddEvent(i)),
          t.logSignals,
        ),
      );
      // Times with microseconds (dropped, never rounded up) and before 1970.
      const stamps = [
        "2026-12-01 01:58:47.999999+00",
        "1969-07-20 20:17:40.0005+00",
        "2026-12-01 01:58:47+00",
      ];
      for (let i = 0; i < stamps.length; i++)
        await t.db.query(
          "UPDATE change_events SET occurred_at = $1 WHERE position IS NULL AND id % $2 = $3",
          [stamps[i], stamps.length, i],
        );
      const result = await stampPendingEvents(t.db, 5000, 64);
      assert.equal(result.stamped, 24);
      assert.equal(result.head, from + 24);
      const read = await readLog(t.db, from, 1000);
      assert.deepEqual(result.events?.map(plain), read.map(plain));
      assert.ok(result.events?.every((event) => Object.isFrozen(event)));
      for (const [i, event] of (result.events ?? []).entries())
        for (const includePrevious of [false, true]) {
          const options = { entityName: "acme", includePrevious };
          assert.equal(
            dataTexts.dataText(event, options),
            JSON.stringify(toDataObject(read[i]!, options)),
          );
        }
    });

    test("nothing is handed over past the limit, with a limit of 0, or when nothing was stamped", async () => {
      await t.db.transaction((tx) =>
        appendChangeEvents(tx, [oddEvent(1), oddEvent(2), oddEvent(3)], t.logSignals),
      );
      const tooMany = await stampPendingEvents(t.db, 5000, 2);
      assert.equal(tooMany.stamped, 3);
      assert.equal(tooMany.events, undefined);
      await t.db.transaction((tx) => appendChangeEvents(tx, [oddEvent(4)], t.logSignals));
      const none = await stampPendingEvents(t.db, 5000, 0);
      assert.equal(none.stamped, 1);
      assert.equal(none.events, undefined);
      const empty = await stampPendingEvents(t.db, 5000, 64);
      assert.equal(empty.stamped, 0);
      assert.equal(empty.events, undefined);
    });

    test("a batch that stops short hands over its own positions only", async () => {
      const from = await readLogHead(t.db);
      await t.db.transaction((tx) =>
        appendChangeEvents(
          tx,
          Array.from({ length: 5 }, (_, i) => oddEvent(i)),
          t.logSignals,
        ),
      );
      const first = await stampPendingEvents(t.db, 3, 64);
      const second = await stampPendingEvents(t.db, 3, 64);
      assert.deepEqual(
        first.events?.map((e) => e.position),
        [from + 1, from + 2, from + 3],
      );
      assert.deepEqual(
        second.events?.map((e) => e.position),
        [from + 4, from + 5],
      );
    });

    if (backend === "postgres") {
      test("overlapping stampers each hand over a dense range; together every position once", async () => {
        const from = await readLogHead(t.db);
        const other = await t.connect(4);
        try {
          const rounds: Promise<Awaited<ReturnType<typeof stampPendingEvents>>>[] = [];
          for (let i = 0; i < 30; i++) {
            await t.db.transaction((tx) =>
              appendChangeEvents(tx, [oddEvent(i), oddEvent(i + 1)], t.logSignals),
            );
            rounds.push(stampPendingEvents(i % 2 ? other : t.db, 3, 64));
          }
          const results = await Promise.all(rounds);
          while ((await stampPendingEvents(t.db, 5000, 64)).stamped > 0);
          const handed = results.flatMap((r) => {
            assert.equal(r.events?.length ?? 0, r.stamped);
            assert.deepEqual(
              r.events?.map((e) => e.position) ?? [],
              Array.from({ length: r.stamped }, (_, i) => r.head - r.stamped + i + 1),
            );
            return r.events ?? [];
          });
          const positions = handed.map((e) => e.position).sort((a, b) => a - b);
          assert.equal(new Set(positions).size, positions.length);
          const log = new Map((await readLog(t.db, from, 1000)).map((e) => [e.position, e]));
          for (const event of handed)
            assert.deepEqual(plain(event), plain(log.get(event.position)!));
        } finally {
          await other.close();
        }
      });
    }
  });
}
