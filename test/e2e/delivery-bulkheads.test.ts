/**
 * Bulkheads (issue #19, docs/delivery.md "Bulkheads"), in-process on both backends: the real
 * sequencer and worker push to ONE loopback origin whose paths answer at once, slowly, or not until
 * the test releases them.
 *
 * - A slow neighbour: a subscription whose endpoint holds every request, at the largest
 *   maxConcurrency (64, what the worker's old shared pool had per origin), beside a healthy one on
 *   the same host:port. The slow one holds exactly its maximum, never more; the healthy one's events
 *   all arrive promptly while it does.
 * - A replay counts in its subscription's maxConcurrency: live pushes and replay pushes together
 *   never pass it, and both make progress.
 *
 * Latency bounds are generous (a loaded 2-core machine), far below what waiting behind a held
 * request costs (until the test releases it).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import { insertReplay, listReplays } from "../../src/storage/replay-repository.js";
import type { HeldReceiver, HeldRequest } from "../helpers/held-receiver.js";
import { startHeldReceiver } from "../helpers/held-receiver.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import {
  append,
  dataObjects,
  deliveryConfig,
  entityId,
  eventually,
  profileUpdate,
  subscribe,
} from "./delivery-fixtures.js";

const logger = createLogger("silent");
/** The most a healthy subscription's event may take from commit to its endpoint here. */
const PROMPT_MS = 10_000;

/** What the tests read of an event's `_event` block. */
interface EventBlock {
  id: string;
  position: number;
}

/** The `_event` blocks a request carried. */
function eventsOf(request: HeldRequest): EventBlock[] {
  return dataObjects(request.json).map((data) => data._event as EventBlock);
}

const on = (path: string) => (requests: readonly HeldRequest[]) =>
  requests.filter((q) => q.path === path);

for (const { backend, skip } of await testBackends()) {
  describe(`bulkheads on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let entity: number;
    let sequencer: Sequencer;
    let worker: DeliveryWorker;
    let endpoint: HeldReceiver;

    before(async () => {
      t = await createTestDatabase(backend);
      entity = await entityId(t.db);
      endpoint = await startHeldReceiver();
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 200 });
      worker = await startDeliveryWorker({
        db: t.db,
        logSignals: t.logSignals,
        logger,
        secrets: t.secrets,
        // Held requests must stay in flight for the whole test, not time out and free their slots.
        config: deliveryConfig({ workerId: `bulkheads-${backend}`, deliveryTimeoutMs: 60_000 }),
        tuning: { leaseRenewMs: 300, pollMs: 300, watermarkFlushMs: 50 },
      });
    });
    after(async () => {
      await endpoint?.close();
      await worker?.stop();
      await sequencer?.stop();
      await t?.drop();
    });

    test("a slow subscription holds its maxConcurrency and no more; a healthy one on the same origin stays prompt", async () => {
      endpoint.answer("/slow", "hold");
      const slow = await subscribe(t.db, entity, {
        targetUrl: `${endpoint.origin}/slow`,
        maxConcurrency: 64,
      });
      const healthy = await subscribe(t.db, entity, { targetUrl: `${endpoint.origin}/fast` });
      worker.wake();
      await eventually(
        () => [slow.id, healthy.id].every((id) => worker.driving().includes(id)),
        10_000,
        "the worker to drive both subscriptions",
      );

      try {
        // A first wave: both subscriptions want these 100 events of 100 records.
        await append(
          t.db,
          Array.from({ length: 100 }, (_, i) => profileUpdate(entity, 1_000 + i, 1)),
        );
        await endpoint.waitFor(
          (requests) => on("/slow")(requests).length >= 64,
          PROMPT_MS,
          "the slow endpoint to hold 64 requests",
        );
        await endpoint.waitFor(
          (requests) => on("/fast")(requests).length >= 100,
          PROMPT_MS,
          "the healthy subscription's 100 events while its neighbour holds 64 requests",
        );

        // A second wave while the slow one still holds its maximum: each event arrives promptly.
        const appendedAt = Date.now();
        await append(
          t.db,
          Array.from({ length: 50 }, (_, i) => profileUpdate(entity, 2_000 + i, 1)),
        );
        await endpoint.waitFor(
          (requests) => on("/fast")(requests).length >= 150,
          PROMPT_MS,
          "the healthy subscription's next 50 events",
        );
        const slowest = Math.max(...on("/fast")(endpoint.requests).map((q) => q.receivedAt));
        assert.ok(
          slowest - appendedAt < PROMPT_MS,
          `the last event took ${slowest - appendedAt} ms`,
        );
        assert.equal(endpoint.inFlight("/slow"), 64, "the slow endpoint still holds 64 requests");
        assert.equal(endpoint.maxInFlight("/slow"), 64, "never more than its maxConcurrency");
        assert.ok(endpoint.maxInFlight("/fast") <= 8, "the healthy one within its maxConcurrency");
        const fastEvents = new Set(
          on("/fast")(endpoint.requests)
            .flatMap(eventsOf)
            .map((e) => e.id),
        );
        assert.equal(fastEvents.size, 150, "every event of the healthy subscription, once each");
      } finally {
        // Released, the slow subscription delivers everything too, still within its maximum.
        endpoint.release("/slow");
      }
      await endpoint.waitFor(
        (requests) =>
          new Set(
            on("/slow")(requests)
              .flatMap(eventsOf)
              .map((e) => e.id),
          ).size >= 150,
        30_000,
        "the slow subscription's 150 events once released",
      );
      assert.equal(endpoint.maxInFlight("/slow"), 64);
    });

    test("replay pushes count in the subscription's maxConcurrency, beside live ones", async () => {
      const table = "2";
      const event = (record: number) => ({ ...profileUpdate(entity, record, 1), sourceId: table });
      endpoint.answer("/replayed", { delayMs: 150 });
      const sub = await subscribe(t.db, entity, {
        targetUrl: `${endpoint.origin}/replayed`,
        onElementId: table,
        maxConcurrency: 2,
      });
      worker.wake();
      await eventually(
        () => worker.driving().includes(sub.id),
        10_000,
        "the worker to drive the subscription",
      );
      const mine = on("/replayed");

      // Ten events delivered live: the range the replay sends again.
      await append(
        t.db,
        Array.from({ length: 10 }, (_, i) => event(1 + i)),
      );
      await endpoint.waitFor((r) => mine(r).length >= 10, PROMPT_MS, "the first ten pushes");
      const first = mine(endpoint.requests).flatMap(eventsOf);
      const positions = first.map((e) => e.position);

      // A backlog of live events keeps both slots busy while the replay runs.
      await append(
        t.db,
        Array.from({ length: 60 }, (_, i) => event(100 + i)),
      );
      const replay = await insertReplay(t.db, {
        subscriptionId: sub.id,
        fromPosition: Math.min(...positions),
        toPosition: Math.max(...positions),
        fromTime: null,
      });
      assert.ok(replay);
      await eventually(
        async () =>
          (await listReplays(t.db, sub.id)).some((r) => r.id === replay.id && r.status === "DONE"),
        30_000,
        "the replay to finish",
      );
      await endpoint.waitFor((r) => mine(r).length >= 80, 30_000, "70 live and 10 replay pushes");

      const seen = new Set<string>();
      const replayed: number[] = [];
      const live: number[] = [];
      for (const q of mine(endpoint.requests)) {
        const id = eventsOf(q)[0]!.id;
        (seen.has(id) ? replayed : live).push(q.receivedAt);
        seen.add(id);
      }
      assert.equal(replayed.length, 10, "the replay sent the ten events again");
      assert.equal(live.length, 70, "every live event once");
      assert.ok(
        Math.min(...replayed) < Math.max(...live),
        "the replay ran while live pushes were still going",
      );
      assert.equal(
        endpoint.maxInFlight("/replayed"),
        2,
        "live + replay never pass maxConcurrency 2",
      );
    });
  });
}
