/**
 * recordAttempts writes a batch of attempts in one statement, the event ids of all of them in one
 * array parameter: every attempt must come back with exactly its own ids, in order, whatever the
 * sizes of its neighbours (none, one, a full block) and whatever the other fields hold.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { AttemptView } from "../../src/storage/attempt-repository.js";
import { listSubscriptionAttempts } from "../../src/storage/attempt-repository.js";
import type { AttemptRecord } from "../../src/storage/attempt-repository.js";
import { recordAttempts } from "../../src/storage/attempt-repository.js";
import { entityId, subscribe } from "../e2e/delivery-fixtures.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

function attempt(
  subscriptionId: number,
  n: number,
  eventIds: number[],
  overrides: Partial<AttemptRecord> = {},
): AttemptRecord {
  return {
    subscriptionId,
    pushId: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    attempt: 1,
    eventIds,
    firstPosition: eventIds[0] ?? 0,
    lastPosition: eventIds.at(-1) ?? 0,
    attemptedAt: new Date(Date.UTC(2026, 11, 1, 0, 0, n)),
    durationMs: n,
    outcome: "DELIVERED",
    statusCode: 200,
    errorClass: null,
    errorMessage: null,
    responseExcerpt: null,
    nextAttemptAt: null,
    workerId: "w1",
    ...overrides,
  };
}

for (const { backend, skip } of await testBackends()) {
  describe(`recordAttempts on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(() => t?.drop());

    test("each attempt of a batch keeps its own event ids and fields", async () => {
      const entity = await entityId(t.db);
      const sub = await subscribe(t.db, entity, { targetUrl: "https://example.com/hook" });
      const block = Array.from({ length: 500 }, (_, i) => 1_000 + i);
      const batch = [
        attempt(sub.id, 1, [7]),
        attempt(sub.id, 2, [], {
          outcome: "RETRY",
          statusCode: null,
          errorClass: "timeout",
          errorMessage: "it took too long",
          nextAttemptAt: new Date(Date.UTC(2026, 11, 1, 0, 1, 0)),
        }),
        attempt(sub.id, 3, block),
        attempt(sub.id, 4, [2 ** 40, 5, 3]),
        attempt(sub.id, 5, [9, 10], { outcome: "FAILED", statusCode: 400, errorClass: "http_4xx" }),
      ];
      await recordAttempts(t.db, batch);
      await recordAttempts(t.db, []);
      const { items, total } = await listSubscriptionAttempts(
        t.db,
        sub.id,
        {},
        { page: 0, pageSize: 100 },
        "oldest",
      );
      assert.equal(total, batch.length);
      // What an attempt shows, comparable whether read back (ids as text) or written (ids as numbers).
      const shown = (
        a: Omit<AttemptView, "id" | "attempt" | "eventIds" | "responseExcerpt"> & {
          eventIds: readonly (number | string)[];
        },
      ) => ({
        pushId: a.pushId,
        eventIds: a.eventIds.map(Number),
        firstPosition: a.firstPosition,
        lastPosition: a.lastPosition,
        attemptedAt: a.attemptedAt.toISOString(),
        durationMs: a.durationMs,
        outcome: a.outcome,
        statusCode: a.statusCode,
        errorClass: a.errorClass,
        errorMessage: a.errorMessage,
        nextAttemptAt: a.nextAttemptAt?.toISOString() ?? null,
      });
      assert.deepEqual(items.map(shown), batch.map(shown));
    });
  });
}
