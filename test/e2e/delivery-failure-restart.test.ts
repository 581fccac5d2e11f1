/**
 * Failure state survives a worker restart (no restart loses a committed event): a parked record and
 * a FAILING subscription are written down, and the next worker to drive the subscription picks them
 * up where the last one left them. In-process engine, real sequencer, real loopback receiver, the
 * real retry schedule on a 20 000x clock.
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
const FACTOR = 20_000;

interface Row {
  watermark: number;
  state: string;
  failing_since: Date | null;
  parked: number;
}

for (const { backend, skip } of await testBackends()) {
  describe(`failure state across a worker restart on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let entity: number;
    let sequencer: Sequencer;
    const workers: DeliveryWorker[] = [];
    const receivers: WebhookReceiver[] = [];
    let generation = 0;

    async function worker(): Promise<DeliveryWorker> {
      const w = await startDeliveryWorker({
        db: t.db,
        logSignals: t.logSignals,
        logger,
        secrets: t.secrets,
        config: deliveryConfig({ workerId: `restart-${backend}-${++generation}` }),
        clock: scaledClock(FACTOR),
        tuning: { leaseRenewMs: 200, pollMs: 200, watermarkFlushMs: 30 },
      });
      workers.push(w);
      return w;
    }

    async function row(id: number): Promise<Row> {
      const { rows } = await t.db.query<Row>(
        `SELECT watermark, state, failing_since,
                (SELECT count(*)::int FROM parked_records WHERE subscription_id = s.id) AS parked
           FROM webhook_subscriptions s WHERE id = $1`,
        [id],
      );
      return rows[0]!;
    }

    before(async () => {
      t = await createTestDatabase(backend);
      entity = await entityId(t.db);
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 100 });
    });
    after(async () => {
      for (const w of workers) await w.stop();
      await sequencer?.stop();
      for (const r of receivers) await r.close();
      await t?.drop();
    });

    test("a parked record stays parked across a restart, then is delivered in order", async () => {
      const r = await startWebhookReceiver();
      receivers.push(r);
      let rejecting = true;
      const accepted: unknown[] = [];
      r.respondWith((q) => {
        if (rejecting && dataObjects(q.json)[0]!.profileId === "7001") return { status: 500 };
        accepted.push(q.json);
        return undefined;
      });
      const sub = await subscribe(t.db, entity, { targetUrl: r.url, maxConcurrency: 2 });
      const start = (await row(sub.id)).watermark;
      const first = await worker();
      first.wake();
      await eventually(async () => first.driving().includes(sub.id), 10_000, "driving");
      // The bad record first, then others (so others are delivered after its first failure), then
      // more of the bad record, which must queue behind it.
      await append(t.db, [profileUpdate(entity, 7001, 1)]);
      for (let i = 0; i < 6; i++) await append(t.db, [profileUpdate(entity, 7100 + i, 1)]);
      await append(t.db, [profileUpdate(entity, 7001, 2), profileUpdate(entity, 7001, 3)]);
      await eventually(async () => (await row(sub.id)).parked === 1, 20_000, "7001 parked");
      const { rows: parked } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM parked_events WHERE subscription_id = $1",
        [sub.id],
      );
      await eventually(
        async () => (await row(sub.id)).watermark >= start + 9,
        10_000,
        "the watermark passes the parked record's events",
      );
      assert.ok(parked[0]!.n >= 1, "its events are written down");
      await first.stop();

      rejecting = false;
      const second = await worker();
      second.wake();
      await eventually(
        () => accepted.filter((json) => dataObjects(json)[0]!.profileId === "7001").length >= 3,
        20_000,
        "the three events of 7001 delivered by the next worker",
      );
      assert.deepEqual(orderReport(accepted).outOfOrder, []);
      await eventually(async () => (await row(sub.id)).parked === 0, 10_000, "unparked");
      const { rows: left } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM parked_events WHERE subscription_id = $1",
        [sub.id],
      );
      assert.equal(left[0]!.n, 0);
      await second.stop();
    });

    test("a FAILING subscription stays FAILING across a restart, keeps its failing-since, recovers", async () => {
      const r = await startWebhookReceiver();
      receivers.push(r);
      let down = true;
      const accepted: unknown[] = [];
      r.respondWith((q) => {
        if (down) return { status: 503 };
        accepted.push(q.json);
        return undefined;
      });
      const sub = await subscribe(t.db, entity, { targetUrl: r.url, maxConcurrency: 4 });
      const first = await worker();
      first.wake();
      await eventually(async () => first.driving().includes(sub.id), 10_000, "driving");
      for (let i = 0; i < 12; i++) await append(t.db, [profileUpdate(entity, 7200 + i, 1)]);
      await eventually(async () => (await row(sub.id)).state === "FAILING", 20_000, "FAILING");
      const since = (await row(sub.id)).failing_since;
      assert.ok(since, "failing_since recorded");
      await first.stop();
      // Written while nobody drives it: delivered after recovery too.
      await append(t.db, [profileUpdate(entity, 7300, 1)]);

      const second = await worker();
      second.wake();
      await eventually(async () => second.driving().includes(sub.id), 10_000, "taken over");
      const during = await row(sub.id);
      assert.equal(during.state, "FAILING");
      assert.equal(during.failing_since?.getTime(), since.getTime(), "the 3-day count goes on");
      assert.equal(during.parked, 0, "an outage parks nothing");
      down = false;
      await eventually(
        () => orderReport(accepted).distinct >= 13,
        20_000,
        "every event delivered after recovery",
      );
      await eventually(async () => (await row(sub.id)).state === "ACTIVE", 10_000, "ACTIVE");
      const report = orderReport(accepted);
      assert.equal(report.distinct, 13);
      assert.deepEqual(report.outOfOrder, []);
      await second.stop();
    });
  });
}
