/**
 * The API in-process (app.inject) with a real sequencer, a real delivery worker and a loopback
 * receiver on the same database: what the end-to-end delivery-control tests drive.
 */
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import type { Backend } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import { deliveryConfig } from "./delivery-fixtures.js";

export interface ApiWithEngine {
  app: TestApp;
  sequencer: Sequencer;
  worker: DeliveryWorker;
  receiver: WebhookReceiver;
  close(): Promise<void>;
}

export async function startApiWithEngine(
  backend: Backend,
  workerId: string,
): Promise<ApiWithEngine> {
  const logger = createLogger("silent");
  const app = await createTestApp(backend);
  const receiver = await startWebhookReceiver();
  const sequencer = await startSequencer({
    db: app.database.db,
    logSignals: app.database.logSignals,
    logger,
    pollMs: 200,
  });
  const worker = await startDeliveryWorker({
    db: app.database.db,
    logSignals: app.database.logSignals,
    logger,
    secrets: app.database.secrets,
    config: deliveryConfig({ workerId }),
    tuning: { leaseRenewMs: 200, pollMs: 200, watermarkFlushMs: 50 },
  });
  return {
    app,
    sequencer,
    worker,
    receiver,
    close: async () => {
      await worker.stop();
      await sequencer.stop();
      await receiver.close();
      await app.close();
    },
  };
}
