/**
 * What a subscription runner and its pieces (parking, the circuit, replays, the push-attempt step)
 * are given by the delivery worker that starts them. Its own file so that the pieces import it
 * without importing the runner that imports them.
 */
import type { Logger } from "pino";
import type { EndpointHealthThresholds } from "../domain/endpoint-health.js";
import type { RandomSource, RetryPolicy } from "../domain/retry-policy.js";
import type { Database } from "../storage/database.js";
import type { Clock } from "./clock.js";
import type { DeliveryTuning } from "./delivery-tuning.js";
import type { HttpSender } from "./http-sender.js";
import type { OperationsNotifier } from "./operations-notifier.js";

export interface RunnerContext {
  db: Database;
  sender: HttpSender;
  logger: Logger;
  workerId: string;
  tuning: DeliveryTuning;
  policy: RetryPolicy;
  random: RandomSource;
  /** Retry, parking, probe and endpoint-health timing runs on this clock (scaled in tests). */
  clock: Clock;
  /** Raises operational events (SPEC §6 endpoint health). */
  operations: OperationsNotifier;
  health: EndpointHealthThresholds;
  /** False when this worker's leases may have lapsed: no push may start. */
  leaseValid(): boolean;
  /** The runner can no longer drive its subscription (lease lost, subscription disabled). */
  onGiveUp(subscriptionId: number, why: string): void;
}
