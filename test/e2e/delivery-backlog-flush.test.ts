/**
 * A subscription that has delivered a backlog writes its watermark as soon as the backlog's last
 * push is answered, not at the next watermark tick: a restart right after a backlog re-sends
 * nothing. The tick here is a minute long, so only that rule can write the watermark in time.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import { append, deliveryConfig, entityId, profileUpdate, subscribe } from "./delivery-fixtures.js";

const logger = createLogger("silent");
const EVENTS = 60;

for (const { backend, skip } of await testBackends()) {
  describe(`watermark after a backlog on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let sequencer: Sequencer;
    let worker: DeliveryWorker;
    let receiver: WebhookReceiver;

    before(async () => {
      t = await createTestDatabase(backend);
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 200 });
      receiver = await startWebhookReceiver();
      worker = await startDeliveryWorker({
        db: t.db,
        logSignals: t.logSignals,
        logger,
        secrets: t.secrets,
        config: deliveryConfig({ workerId: `backlog-${backend}` }),
        // Pages of 10 positions: 60 events stamped at once are a backlog of six pages.
        tuning: { leaseRenewMs: 300, pollMs: 300, watermarkFlushMs: 60_000, readBatchSize: 10 },
      });
    });
    after(async () => {
      await worker?.stop();
      await sequencer?.stop();
      await receiver?.close();
      await t?.drop();
    });

    test("the watermark reaches the backlog's last event within seconds of its push, not at the tick a minute later", async () => {
      const entity = await entityId(t.db);
      const sub = await subscribe(t.db, entity, { targetUrl: receiver.url });
      worker.wake();
      await append(
        t.db,
        Array.from({ length: EVENTS }, (_, i) => profileUpdate(entity, 500 + (i % 6), i + 1)),
      );
      await receiver.waitFor((reqs) => reqs.length >= EVENTS, 15_000, `${EVENTS} pushes`);
      const { rows } = await t.db.query<{ head: number }>("SELECT position AS head FROM log_head");
      const head = Number(rows[0]!.head);
      const deadline = Date.now() + 3_000;
      let watermark = -1;
      while (Date.now() < deadline) {
        const read = await t.db.query<{ watermark: number }>(
          "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
          [sub.id],
        );
        watermark = Number(read.rows[0]!.watermark);
        if (watermark >= head) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.equal(watermark, head, "written at once, not at the minute's tick");
    });
  });
}
