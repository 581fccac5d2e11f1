import type { FailureThresholds } from "../domain/failure-decision.js";
import { DEFAULT_FAILURE_THRESHOLDS } from "../domain/failure-decision.js";

/**
 * Knobs of the delivery engine that are not user settings: lease timing, read sizes, buffers, and
 * the failure decision's thresholds (when a failing push is parked or opens the circuit).
 */
export interface DeliveryTuning extends FailureThresholds {
  /**
   * How long a lease lasts without renewal; a dead worker's subscriptions move after this (on
   * PostgreSQL, once its liveness lock has been gone for `livenessGraceMs`, which is sooner). The
   * worker uses at least the delivery timeout + 5 s.
   */
  leaseTtlMs: number;
  /** How often leases are renewed, fair shares recomputed and subscriptions re-read. */
  leaseRenewMs: number;
  /**
   * No push starts later than this before the lease could expire, so an in-flight push never
   * outlives its lease. The worker uses the delivery timeout + 1 s.
   */
  leaseSafetyMarginMs: number;
  /**
   * PostgreSQL: how often a worker confirms that its liveness lock is held (worker-liveness.ts).
   */
  livenessConfirmMs: number;
  /**
   * PostgreSQL: a worker pushes only within this long of sending a confirmation of its liveness
   * lock, and takes over another worker's lease only once it has seen that worker's lock gone for
   * this long. Must be the same for every worker.
   */
  livenessGraceMs: number;
  /** PostgreSQL: how often a worker looks for leases whose holder's liveness lock is gone. */
  orphanCheckMs: number;
  /** Safety-net poll of the log when no NOTIFY arrives. */
  pollMs: number;
  /** Finished positions are written to the watermark at most this often. */
  watermarkFlushMs: number;
  /** Log rows read per query. */
  readBatchSize: number;
  /** Matching events one subscription holds in memory before it stops reading ahead. */
  maxBufferedEvents: number;
  /** SIGTERM: how long in-flight pushes get to finish before they are handed back. */
  stopTimeoutMs: number;
}

export const DEFAULT_DELIVERY_TUNING: DeliveryTuning = {
  leaseTtlMs: 10_000,
  leaseRenewMs: 2_500,
  leaseSafetyMarginMs: 2_000,
  livenessConfirmMs: 250,
  livenessGraceMs: 1_750,
  orphanCheckMs: 250,
  pollMs: 2_000,
  watermarkFlushMs: 200,
  readBatchSize: 1_000,
  maxBufferedEvents: 8_000,
  stopTimeoutMs: 10_000,
  ...DEFAULT_FAILURE_THRESHOLDS,
};
