/**
 * Housekeeping (issue "delivery under failure", item 6): in the background, prunes what retention
 * (`HERALD_RETENTION_DAYS`) no longer keeps — delivery attempts, change events (never at or above a
 * live cursor: see `liveLogFloor`), expired access tokens, finished replay requests and expired stored
 * files (HERALD_FILE_RETENTION_DAYS, never one an unfinished import reads) — in bounded
 * batches, and logs what it pruned. First of all it deletes the subscriptions whose `expiresAt` has
 * passed (temporary ones, such as `herald listen` leaves when it is killed), one log line each.
 *
 * Pruning is idempotent, so any number of processes may run this; each run first tries an advisory
 * lock and skips when another process is already at it.
 */
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { HeraldConfig } from "../config/config.js";
import type { Database } from "../storage/database.js";
import { deleteExpiredFiles } from "../storage/file-store.js";
import { ADVISORY_LOCKS } from "../storage/database.js";
import {
  deleteExpiredSubscriptions,
  liveLogFloor,
  pruneChangeEvents,
  pruneDeliveryAttempts,
  pruneExpiredAccessTokens,
  pruneFinishedReplays,
} from "../storage/housekeeping-repository.js";

export const HOUSEKEEPING_DEFAULTS = {
  /** Between runs (HERALD_HOUSEKEEPING_INTERVAL_MS). */
  intervalMs: 10 * 60_000,
  /** Rows per DELETE statement: short locks, small WAL bursts. */
  batchSize: 5_000,
  /** Statements per kind per run; the rest waits for the next run (bounds one run's length). */
  maxBatchesPerRun: 200,
} as const;

export interface HousekeepingOptions {
  db: Database;
  logger: Logger;
  config: Pick<HeraldConfig, "retentionDays">;
  intervalMs?: number;
  /** Subscriptions were deleted (expired): wake this process's delivery worker, as the API does. */
  subscriptionsChanged?: () => void;
  /** Before the first run (default: one minute, so a restart does not delay pruning by a whole interval). */
  firstRunDelayMs?: number;
  /** Tests: a fixed clock. */
  now?: () => Date;
  batchSize?: number;
  maxBatchesPerRun?: number;
}

/** Rows pruned by one run. */
export interface HousekeepingReport {
  /** Subscriptions deleted because their `expiresAt` had passed. */
  expiredSubscriptions: number;
  deliveryAttempts: number;
  changeEvents: number;
  accessTokens: number;
  replays: number;
  /** Stored files past HERALD_FILE_RETENTION_DAYS (uploads of finished imports) and abandoned uploads. */
  storedFiles: number;
  /** The live floor the change log was pruned under. */
  logFloor: number;
}

export interface Housekeeping extends BackgroundService {
  /** One run now; undefined when another process holds the housekeeping lock. */
  runOnce(): Promise<HousekeepingReport | undefined>;
}

const DAY_MS = 24 * 60 * 60_000;

export async function startHousekeeping(options: HousekeepingOptions): Promise<Housekeeping> {
  const { db } = options;
  const logger = options.logger.child({ component: "housekeeping" });
  const intervalMs = options.intervalMs ?? HOUSEKEEPING_DEFAULTS.intervalMs;
  const batchSize = options.batchSize ?? HOUSEKEEPING_DEFAULTS.batchSize;
  const maxBatches = options.maxBatchesPerRun ?? HOUSEKEEPING_DEFAULTS.maxBatchesPerRun;
  const now = options.now ?? (() => new Date());
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<HousekeepingReport | undefined> | undefined;

  /** Runs `batch` until it deletes less than a full batch (or the run's cap, or stop). */
  async function drain(batch: () => Promise<number>): Promise<number> {
    let total = 0;
    for (let i = 0; i < maxBatches && !stopping; i++) {
      const deleted = await batch();
      total += deleted;
      if (deleted < batchSize) break;
      // Let other work on this process (and PGlite's single session) in between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return total;
  }

  async function run(): Promise<HousekeepingReport | undefined> {
    const lock = await db.tryAdvisoryLock(ADVISORY_LOCKS.housekeeping);
    if (!lock) {
      logger.debug("another process is housekeeping; skipped");
      return undefined;
    }
    try {
      const at = now();
      const cutoff = new Date(at.getTime() - options.config.retentionDays * DAY_MS);
      // First, so that an expired subscription no longer holds the log back from this run's pruning.
      const expiredSubscriptions = await drain(async () => {
        const expired = await deleteExpiredSubscriptions(db, at, batchSize);
        for (const s of expired)
          logger.info(
            {
              subscriptionId: s.id,
              entity: s.entityName,
              expiresAt: s.expiresAt.toISOString(),
              targetUrl: s.targetUrl,
            },
            "webhook subscription expired; deleted",
          );
        return expired.length;
      });
      if (expiredSubscriptions > 0) options.subscriptionsChanged?.();
      const report: HousekeepingReport = {
        expiredSubscriptions,
        deliveryAttempts: await drain(() => pruneDeliveryAttempts(db, cutoff, batchSize)),
        changeEvents: 0,
        accessTokens: await drain(() => pruneExpiredAccessTokens(db, at, batchSize)),
        replays: await drain(() => pruneFinishedReplays(db, cutoff, batchSize)),
        // Each file expires on its own date (set when it was stored); few enough for one statement.
        storedFiles: await deleteExpiredFiles(db),
        logFloor: 0,
      };
      // The floor is re-read before every batch: a cursor that appears meanwhile (a replay request)
      // is protected from the next batch on.
      report.changeEvents = await drain(async () => {
        report.logFloor = await liveLogFloor(db);
        return pruneChangeEvents(db, cutoff, report.logFloor, batchSize);
      });
      const pruned =
        report.expiredSubscriptions +
        report.deliveryAttempts +
        report.changeEvents +
        report.accessTokens +
        report.replays +
        report.storedFiles;
      if (pruned > 0)
        logger.info({ ...report, retentionDays: options.config.retentionDays }, "pruned old rows");
      else logger.debug({ logFloor: report.logFloor }, "nothing to prune");
      return report;
    } finally {
      await lock.release();
    }
  }

  function runOnce(): Promise<HousekeepingReport | undefined> {
    // One run at a time per process: a caller during a run waits for it and then runs again.
    const previous = running ?? Promise.resolve(undefined);
    const next = previous
      .catch(() => undefined)
      .then(() => run())
      .finally(() => {
        if (running === next) running = undefined;
      });
    running = next;
    return next;
  }

  function schedule(delayMs = intervalMs): void {
    if (stopping) return;
    timer = setTimeout(() => {
      timer = undefined;
      runOnce()
        .catch((error: unknown) =>
          logger.warn({ err: error }, "housekeeping run failed; retrying at the next interval"),
        )
        .finally(() => schedule());
    }, delayMs);
    timer.unref();
  }

  schedule(options.firstRunDelayMs ?? Math.min(intervalMs, 60_000));
  logger.info({ intervalMs, retentionDays: options.config.retentionDays }, "housekeeping started");

  return {
    name: "housekeeping",
    runOnce,
    async stop() {
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}
