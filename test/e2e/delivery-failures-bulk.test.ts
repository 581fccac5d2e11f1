/**
 * Failure handling in BULK mode: a block that holds a record the endpoint rejects parks the block's
 * records, each is retried alone, the accepted ones leave the parking at their first retry and only
 * the rejected one stays; an endpoint that is down opens the circuit without parking anything and
 * everything arrives, in per-record order, once it is back. In-process engine, real sequencer, real
 * loopback receiver, the real retry schedule on a 20 000x clock.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { scaledClock } from "../../src/delivery/clock.js";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import {
  append,
  dataObjects,
  deliveryConfig,
  entityId,
  eventually,
  orderReport,
  profileUpdate,
  subscribe,
} from "./delivery-fixtures.js";

const logger = createLogger("silent");
const BULK = { pushMode: "BULK" as const, maxBlockSize: 5, lingerMs: 20, maxWaitMs: 100 };

function profileIds(json: unknown): string[] {
  return dataObjects(json).map((data) => String(data.profileId));
}

for (const { backend, skip } of await testBackends()) {
  describe(`BULK delivery under failure on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let entity: number;
    let sequencer: Sequencer;
    let worker: DeliveryWorker;
    const receivers: WebhookReceiver[] = [];

    async function status(id: number): Promise<{ state: string; parked: number }> {
      const { rows } = await t.db.query<{ state: string; parked: number }>(
        `SELECT state, (SELECT count(*)::int FROM parked_records WHERE subscription_id = s.id) AS parked
           FROM webhook_subscriptions s WHERE id = $1`,
        [id],
      );
      return rows[0]!;
    }

    before(async () => {
      t = await createTestDatabase(backend);
      entity = await entityId(t.db);
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 100 });
      worker = await startDeliveryWorker({
        db: t.db,
        logSignals: t.logSignals,
        logger,
        secrets: t.secrets,
        config: deliveryConfig({ workerId: `bulk-failures-${backend}` }),
        clock: scaledClock(20_000),
        tuning: { leaseRenewMs: 200, pollMs: 200, watermarkFlushMs: 30 },
      });
    });
    after(async () => {
      await worker?.stop();
      await sequencer?.stop();
      for (const r of receivers) await r.close();
      await t?.drop();
    });

    test("a block holding a rejected record: its records are parked, retried alone, only the rejected one stays", async () => {
      const r = await startWebhookReceiver();
      receivers.push(r);
      let rejecting = true;
      const accepted: unknown[] = [];
      r.respondWith((q) => {
        if (rejecting && profileIds(q.json).includes("8001")) return { status: 422 };
        accepted.push(q.json);
        return undefined;
      });
      const sub = await subscribe(t.db, entity, { targetUrl: r.url, ...BULK });
      worker.wake();
      await eventually(() => worker.driving().includes(sub.id), 10_000, "driving");
      // Rounds of five records, 8001 among the first; later rounds go without it and succeed.
      await append(
        t.db,
        [8001, 8002, 8003, 8004, 8005].map((id) => profileUpdate(entity, id, 1)),
      );
      for (let round = 0; round < 6; round++) {
        await append(
          t.db,
          [8010 + round, 8020 + round].map((id) => profileUpdate(entity, id, 1)),
        );
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await append(t.db, [profileUpdate(entity, 8001, 2), profileUpdate(entity, 8002, 2)]);
      await eventually(
        () =>
          ["8002", "8003", "8004", "8005"].every((id) =>
            accepted.some((j) => profileIds(j).includes(id)),
          ),
        20_000,
        "the block's other records delivered after they were parked with it",
      );
      await eventually(async () => (await status(sub.id)).parked === 1, 20_000, "only 8001 parked");
      const early = orderReport(accepted);
      assert.deepEqual(early.outOfOrder, []);
      assert.ok(
        !accepted.some((j) => profileIds(j).includes("8001")),
        "nothing of the rejected record was accepted",
      );
      rejecting = false;
      await eventually(
        () => accepted.filter((j) => profileIds(j).includes("8001")).length >= 1,
        20_000,
        "8001 delivered once accepted",
      );
      await eventually(async () => (await status(sub.id)).parked === 0, 20_000, "unparked");
      const report = orderReport(accepted);
      assert.deepEqual(report.outOfOrder, [], "per-record order, also for 8001 v1 then v2");
      assert.equal(report.distinct, 5 + 12 + 2, "every event delivered");
      assert.equal((await status(sub.id)).state, "ACTIVE");
    });

    test("an endpoint that is down: FAILING, nothing parked, then every block arrives in order", async () => {
      const r = await startWebhookReceiver();
      receivers.push(r);
      let down = true;
      const accepted: unknown[] = [];
      r.respondWith((q) => {
        if (down) return { status: 503 };
        accepted.push(q.json);
        return undefined;
      });
      const sub = await subscribe(t.db, entity, { targetUrl: r.url, ...BULK });
      worker.wake();
      await eventually(() => worker.driving().includes(sub.id), 10_000, "driving");
      for (let version = 1; version <= 4; version++) {
        await append(
          t.db,
          [8101, 8102, 8103, 8104, 8105, 8106, 8107].map((id) =>
            profileUpdate(entity, id, version),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await eventually(async () => (await status(sub.id)).state === "FAILING", 20_000, "FAILING");
      assert.equal((await status(sub.id)).parked, 0, "an outage parks nothing");
      const whileDown = r.requests.length;
      down = false;
      await eventually(() => orderReport(accepted).distinct >= 28, 20_000, "all 28 events");
      const report = orderReport(accepted);
      assert.deepEqual(report.outOfOrder, []);
      assert.ok(
        accepted.every((j) => dataObjects(j).length <= BULK.maxBlockSize),
        "blocks stay within maxBlockSize",
      );
      await eventually(async () => (await status(sub.id)).state === "ACTIVE", 10_000, "ACTIVE");
      assert.equal((await status(sub.id)).parked, 0);
      // At most circuitBreakerFailures (10) + maxConcurrency (8) attempts before the circuit opened,
      // then probes: a handful of schedule steps at most in this short outage.
      assert.ok(whileDown <= 10 + 8 + 12, `${whileDown} requests while down`);
    });
  });
}
