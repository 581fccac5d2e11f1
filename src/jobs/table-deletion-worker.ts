/**
 * The table deletion worker (SPEC §3, DESIGN §6b): every process with the `worker` role claims
 * deletions that are runnable (not finished, lease free or expired, not waiting) under a lease and
 * runs up to `concurrency` at once (table-deletion.ts), in the job loop of job-loop.ts: woken by a
 * DELETE of a table in any process, polling as a safety net (a deletion waiting for its
 * subscriptions comes back through the poll), handing the running deletions back at stop.
 */
import type { Logger } from "pino";
import type { HeraldConfig } from "../config/config.js";
import { defaultWorkerId } from "../background-service.js";
import type { Database } from "../storage/database.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { LogSignals } from "../storage/log-signals.js";
import type { TableDeletion } from "../storage/table-deletion-repository.js";
import {
  claimDeletion,
  hasRunnableDeletion,
  recordDeletionFailure,
  releaseDeletionLeases,
} from "../storage/table-deletion-repository.js";
import type { DeliveryCheckSpacing } from "./table-deletion.js";
import { DELIVERY_CHECK_SPACING, deliveryCheckDelay, runTableDeletion } from "./table-deletion.js";
import type { JobLoop } from "./job-loop.js";
import { startJobLoop } from "./job-loop.js";

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
  logSignals: LogSignals;
  jobSignals: JobSignals;
  logger: Logger;
  config: Pick<HeraldConfig, "workerId">;
  leaseMs?: number;
  pollMs?: number;
  batchRows?: number;
  concurrency?: number;
  /** How the wait for subscriptions is spaced out (tests make it short). */
  deliveryChecks?: DeliveryCheckSpacing;
}

export type TableDeletionWorker = JobLoop;

export async function startTableDeletionWorker(
  options: TableDeletionWorkerOptions,
): Promise<TableDeletionWorker> {
  const { db, config } = options;
  const owner = `${config.workerId ?? defaultWorkerId()}:table-deletions`;
  const logger = options.logger.child({ component: "table-deletions", worker: owner });
  const leaseMs = options.leaseMs ?? TABLE_DELETION_DEFAULTS.leaseMs;
  /** The loop, once started: a run asks it whether the worker is stopping. */
  const started: { loop?: JobLoop } = {};

  const settings = {
    db,
    logSignals: options.logSignals,
    logger,
    owner,
    leaseMs,
    batchRows: options.batchRows ?? TABLE_DELETION_DEFAULTS.batchRows[db.kind],
    spacing: options.deliveryChecks ?? DELIVERY_CHECK_SPACING,
    stopping: () => started.loop?.stopping() ?? false,
  };

  async function claim(): Promise<TableDeletion | undefined> {
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

  async function run(deletion: TableDeletion): Promise<void> {
    try {
      const end = await runTableDeletion(settings, deletion);
      if (end.kind === "lost")
        logger.warn(
          { tableId: deletion.tableId },
          "another worker took this table deletion over (this one stalled past its lease)",
        );
    } catch (error) {
      await retryLater(deletion, error);
    }
  }

  started.loop = await startJobLoop({
    db,
    jobSignals: options.jobSignals,
    logger,
    name: "table deletions",
    pollMs: options.pollMs ?? TABLE_DELETION_DEFAULTS.pollMs,
    concurrency: options.concurrency ?? TABLE_DELETION_DEFAULTS.concurrency,
    claim,
    keyOf: (deletion) => deletion.tableId,
    run,
    releaseAll: () => releaseDeletionLeases(db, owner),
  });
  return started.loop;
}
