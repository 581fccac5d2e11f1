// PLACEHOLDER (owned by the delivery work): replaced by the real delivery worker.
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { HeraldConfig } from "../config/config.js";
import type { Database } from "../storage/database.js";

export interface DeliveryWorkerOptions {
  db: Database;
  logger: Logger;
  config: HeraldConfig;
}

export interface DeliveryWorker extends BackgroundService {
  /** Subscriptions changed: re-read them now instead of at the next lease renewal. */
  wake(): void;
}

export async function startDeliveryWorker(
  _options: DeliveryWorkerOptions,
): Promise<DeliveryWorker> {
  return { name: "delivery", stop: async () => {}, wake: () => {} };
}
