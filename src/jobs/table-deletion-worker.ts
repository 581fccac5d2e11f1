/**
 * The table deletion worker (SPEC §3, DESIGN §6b): every process with the `worker` role claims
 * deletions that are runnable (not finished, lease free or expired, not waiting) under a lease and
 * runs up to `concurrency` at once (table-deletion.ts). It wakes on JOBS_CHANNEL (a DELETE of a
 * table, from any process) and polls as a safety net; a deletion waiting for its subscriptions
 * comes back through the poll. Stopping hands the running deletions back after their current
 * batch: their lease is released at once, so the next worker goes on with them.
 *
 * The worker is in one of three modes: `idle` (waiting for a wake-up or the poll), `claiming`
 * (looking for work) or `stopping`.
 */
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { HeraldConfig } from "../config/config.js";
import { DatabaseOutageLog } from "../database-outage-log.js";
import type { Database, Unlisten } from "../storage/database.js";
import { JOBS_CHANNEL, onJobsCreated } from "../storage/job-channels.js";
import type { TableDeletion } from "../storage/table-deletion-repository.js";
import {
  claimDeletion,
  hasRunnableDeletion,
  recordDeletionFailure,
  releaseDeletionLeases,
} from "../storage/table-deletion-repository.js";
import type { DeliveryCheckSpacing } from "./table-deletion.js";
import { DELIVERY_CHECK_SPACING, deliveryCheckDelay, runTableDeletion } from "./table-deletion.js";

export const TABLE_DELETION_DEFAULTS = {
  leaseMs: 30_000,
  pollMs: 2_000,
  /**
   * Records per batch, per database (as imports): on PostgreSQL bigger batches cost fewer round
   * trips and commits; on the embedded database a batch is also how long the process stops
   * answering requests.
   */
  batchRows: { postgres: 1_000, pglite: 250 },
  /** Deletions one worker runs at once. */
  concurrency: 2,
  /** After a run that failed on an unexpected error: doubling, up to five minutes. */
  failureSpacing: { firstMs: 1_000, maxMs: 300_000 },
} as const;

export interface TableDeletionWorkerOptions {
  db: Database;
  logger: Logger;
  config: Pick<HeraldConfig, "workerId">;
  leaseMs?: number;
  pollMs?: number;
  batchRows?: number;
  concurrency?: number;
  /** How the wait for subscriptions is spaced out (tests make it short). */
  deliveryChecks?: DeliveryCheckSpacing;
}

export interface TableDeletionWorker extends BackgroundService {
  /** Look for work now (a table was deleted in this process). */
  wake(): void;
}

type Mode = "idle" | "claiming" | "stopping";

export async function startTableDeletionWorker(
  options: TableDeletionWorkerOptions,
): Promise<TableDeletionWorker> {
  const { db, config } = options;
  const owner = `${config.workerId ?? `${hostname()}:${process.pid}`}:table-deletions`;
  const logger = options.logger.child({ component: "table-deletions", worker: owner });
  const pollMs = options.pollMs ?? TABLE_DELETION_DEFAULTS.pollMs;
  const concurrency = options.concurrency ?? TABLE_DELETION_DEFAULTS.concurrency;
  const leaseMs = options.leaseMs ?? TABLE_DELETION_DEFAULTS.leaseMs;
  let mode: Mode = "idle";
  let again = false;
  const running = new Map<string, Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  /** A database outage is logged once, not at every poll that fails because of it. */
  const outage = new DatabaseOutageLog(logger, "table deletions");

  const settings = {
    db,
    logger,
    owner,
    leaseMs,
    batchRows: options.batchRows ?? TABLE_DELETION_DEFAULTS.batchRows[db.kind],
    spacing: options.deliveryChecks ?? DELIVERY_CHECK_SPACING,
    stopping: () => mode === "stopping",
  };

  async function claimOne(): Promise<TableDeletion | undefined> {
    // A cheap look first: an idle poll opens no transaction.
    if (!(await hasRunnableDeletion(db))) return undefined;
    return claimDeletion(db, owner, leaseMs);
  }

  /**
   * An unexpected error (the database gone, say) ended a run: the job is handed back to be tried
   * again later, however often that takes (a table half deleted must not stay so). Never throws.
   */
  async function retryLater(deletion: TableDeletion, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    try {
      const failures = deletion.failures + 1;
      const delayMs = deliveryCheckDelay(failures - 1, TABLE_DELETION_DEFAULTS.failureSpacing);
      await recordDeletionFailure(db, deletion.tableId, owner, message, delayMs);
      logger.error(
        { err: error, tableId: deletion.tableId, table: deletion.tableName, retryInMs: delayMs },
        "the table deletion stopped on an unexpected error; it goes on from where it stopped",
      );
    } catch (failure) {
      logger.error(
        { err: error, failure, tableId: deletion.tableId },
        "the table deletion stopped on an unexpected error; it goes on when its lease expires",
      );
    }
  }

  function run(deletion: TableDeletion): void {
    const done = runTableDeletion(settings, deletion)
      .then((end) => {
        if (end.kind === "lost")
          logger.warn(
            { tableId: deletion.tableId },
            "another worker took this table deletion over (this one stalled past its lease)",
          );
      })
      .catch((error: unknown) => retryLater(deletion, error))
      .finally(() => {
        running.delete(deletion.tableId);
        void look();
      });
    running.set(deletion.tableId, done);
  }

  async function look(): Promise<void> {
    if (mode === "stopping") return;
    if (mode === "claiming") {
      again = true;
      return;
    }
    mode = "claiming";
    try {
      do {
        again = false;
        while (running.size < concurrency) {
          const deletion = await claimOne();
          if (!deletion) break;
          run(deletion);
        }
      } while (again && running.size < concurrency);
      outage.succeeded();
    } catch (error) {
      outage.failed(error, "cannot look for table deletions to run; will retry");
    } finally {
      if (mode === "claiming") mode = "idle";
    }
  }

  const unsubscribeLocal = onJobsCreated(db, () => void look());
  let unlisten: Unlisten | undefined;
  try {
    unlisten = await db.listen(JOBS_CHANNEL, () => void look());
  } catch (error) {
    logger.warn(
      { err: error },
      `cannot LISTEN on ${JOBS_CHANNEL}; table deletions start on the poll only`,
    );
  }
  const tick = () => {
    timer = setTimeout(() => {
      void look().finally(() => {
        if (mode !== "stopping") tick();
      });
    }, pollMs);
    timer.unref();
  };
  tick();
  void look();

  return {
    name: "table-deletions",
    wake: () => void look(),
    stop: async () => {
      mode = "stopping";
      if (timer) clearTimeout(timer);
      unsubscribeLocal();
      await unlisten?.().catch(() => {});
      await Promise.allSettled([...running.values()]);
      // Hand what was running back at once instead of after the lease's life.
      await releaseDeletionLeases(db, owner).catch(() => {});
    },
  };
}
