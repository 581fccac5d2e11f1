/**
 * Issue #19 defect 8: deleting a subscription while its pushes are in flight logged foreign-key
 * warnings ("could not record push attempts; will retry") that read like lost data. The pushes of a
 * deleted subscription end quietly: their attempts go with the subscription, nothing is retried,
 * and the worker lets the subscription go without a warning.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import { deleteSubscription } from "../../src/storage/subscription-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import {
  append,
  deliveryConfig,
  entityId,
  eventually,
  profileUpdate,
  subscribe,
} from "./delivery-fixtures.js";

for (const { backend, skip } of await testBackends()) {
  describe(`deleting a subscription with pushes in flight on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let entity: number;
    let sequencer: Sequencer;
    let worker: DeliveryWorker;
    let receiver: WebhookReceiver;
    const lines: { level: number; msg: string; err?: { message?: string } }[] = [];

    before(async () => {
      t = await createTestDatabase(backend);
      entity = await entityId(t.db);
      const logs = new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString("utf8").split("\n"))
            if (line.trim()) lines.push(JSON.parse(line) as (typeof lines)[number]);
          done();
        },
      });
      const logger = createLogger("info", logs);
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 100 });
      worker = await startDeliveryWorker({
        db: t.db,
        logSignals: t.logSignals,
        logger,
        secrets: t.secrets,
        config: deliveryConfig({ workerId: `delete-${backend}` }),
        tuning: { leaseRenewMs: 200, pollMs: 200, watermarkFlushMs: 50 },
      });
      receiver = await startWebhookReceiver();
    });
    after(async () => {
      await worker?.stop();
      await sequencer?.stop();
      await receiver?.close();
      await t?.drop();
    });

    for (const [outcome, status] of [
      ["delivered", 200],
      ["failing", 503],
    ] as const)
      test(`${outcome} pushes end quietly: no warning, no attempt row left, nothing sent again`, async () => {
        lines.length = 0;
        // Every push is held 700 ms, so the delete lands while they are in flight.
        receiver.respondWith(() => ({ delayMs: 700, status }));
        const earlier = receiver.requests.length;
        const subscription = await subscribe(t.db, entity, {
          targetUrl: `${receiver.url}/hook`,
          maxConcurrency: 4,
        });
        await append(
          t.db,
          [1, 2, 3, 4].map((profile) => profileUpdate(entity, profile + earlier, 1)),
        );
        await eventually(
          () => receiver.requests.length >= earlier + 4,
          10_000,
          "four pushes in flight",
        );
        assert.ok(
          receiver.requests.slice(earlier).some((r) => r.answer === undefined),
          "pushes are in flight",
        );
        assert.equal(await deleteSubscription(t.db, entity, subscription.id), true);

        await eventually(
          () => receiver.requests.every((r) => r.answer !== undefined),
          10_000,
          "the held pushes to be answered",
        );
        // Time for the runner's flushes (50 ms), lease renewals (200 ms) and polls to run a few times.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        const seen = receiver.requests.length;

        const warnings = lines.filter((line) => line.level >= 40);
        assert.deepEqual(
          warnings.map((line) => `${line.msg}${line.err?.message ? `: ${line.err.message}` : ""}`),
          [],
        );
        const { rows } = await t.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM delivery_attempts WHERE subscription_id = $1",
          [subscription.id],
        );
        assert.equal(rows[0]?.n, 0);
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.equal(
          receiver.requests.length,
          seen,
          "nothing is sent again for a deleted subscription",
        );
      });
  });
}
