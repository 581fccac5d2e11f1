/**
 * An export's FINISHED event delivered (SPEC §7.3, §4): a subscription on EXPORT for one export
 * and one for every export receive pushes from the real sequencer and delivery worker, with §7.3's
 * payload; an ERROR execution's event has no file link. On both backends.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import { testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import type { ExportTestApp } from "./exports-harness.js";
import { createExportTestApp, CUSTOMERS, EXPORTS } from "./exports-harness.js";

interface Push {
  data: Record<string, unknown>;
}

for (const { backend, skip } of await testBackends()) {
  describe(`export events delivered on ${backend}`, { skip }, () => {
    let t: ExportTestApp;
    let receiver: WebhookReceiver;
    let sequencer: Sequencer;
    let delivery: DeliveryWorker;
    before(async () => {
      const logger = createLogger("silent");
      t = await createExportTestApp(backend);
      receiver = await startWebhookReceiver();
      sequencer = await startSequencer({
        db: t.database.db,
        logSignals: t.database.logSignals,
        logger,
        pollMs: 100,
      });
      delivery = await startDeliveryWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        logger,
        secrets: t.database.secrets,
        config: t.config,
        tuning: { leaseRenewMs: 200, pollMs: 100, watermarkFlushMs: 50 },
      });
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
      assert.equal(table.statusCode, 201, table.body);
      await t.profile({ key: { customerId: "C1" }, attributes: { firstName: "Ann" } });
    });
    after(async () => {
      await delivery?.stop();
      await sequencer?.stop();
      await receiver?.close();
      await t?.close();
    });

    test("subscriptions on EXPORT receive FINISHED with §7.3's payload", async () => {
      const id = await t.define({ name: "delivered", source: { table: "Customers" } });
      const other = await t.define({ name: "broken", source: { table: "Customers" } });
      const subscribe = async (path: string, onElementId?: string) => {
        const response = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
          on: "EXPORT",
          ...(onElementId === undefined ? {} : { onElementId }),
          eventType: "FINISHED",
          targetUrl: `${receiver.url}/${path}`,
        });
        assert.equal(response.statusCode, 201, response.body);
      };
      await subscribe("one", "delivered");
      await subscribe("every");
      const execution = await t.run(id);
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      // The other export's table is gone when it runs: ERROR, and no file link.
      await t.database.db.query("UPDATE exports SET table_id = 'gone' WHERE id = $1", [other]);
      const failed = await t.run(other);
      assert.equal(failed.status, "ERROR", JSON.stringify(failed));
      assert.match(failed.error!.message, /no longer exists/);

      await receiver.waitFor((requests) => requests.length >= 3, 20_000, "three pushes");
      const pushes = (path: string) =>
        receiver.requests
          .filter((r) => r.path.endsWith(`/${path}`))
          .map((r) => (r.json as Push).data);
      const [one] = pushes("one");
      assert.equal(pushes("one").length, 1);
      const href = `${EXPORTS}/${id}/executions/${execution.id}`;
      assert.deepEqual(
        Object.fromEntries(Object.entries(one!).filter(([key]) => !key.startsWith("_"))),
        {
          "export.id": id,
          "export.name": "delivered",
          "export.executionId": execution.id,
          "export.executionStatus": "SUCCESS",
          "export.rowCount": "1",
          "export.bytes": String(execution.bytes),
        },
      );
      assert.deepEqual(one!._links, {
        self: { href },
        exportExecution: { href },
        file: { href: `${href}/file` },
      });
      const every = pushes("every");
      assert.deepEqual(
        every.map((d) => [d["export.id"], d["export.executionStatus"]]),
        [
          [id, "SUCCESS"],
          [other, "ERROR"],
        ],
      );
      assert.equal((every[1]!._links as Record<string, unknown>).file, undefined);
    });
  });
}
