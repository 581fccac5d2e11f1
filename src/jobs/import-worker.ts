/**
 * The import worker (DESIGN §6b): every process with the `worker` role claims runnable executions
 * (PENDING, or RUNNING with an expired lease: their worker died) under a lease and runs up to
 * `importConcurrency` at once. It wakes on JOBS_CHANNEL (an execution was created, by any process)
 * and polls as a safety net. Stopping hands the running executions back after their current batch:
 * their lease is released at once, so the next worker resumes them from their checkpoint.
 *
 * The worker is in one of three modes: `idle` (waiting for a wake-up or the poll), `claiming`
 * (looking for work) or `stopping`.
 */
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { HeraldConfig } from "../config/config.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import { DatabaseOutageLog } from "../database-outage-log.js";
import type { Database, Unlisten } from "../storage/database.js";
import type { StoredExecution } from "../storage/etl-execution-repository.js";
import {
  claimExecution,
  hasRunnableExecution,
  recordExecutionFailure,
  releaseExecutionLeases,
} from "../storage/etl-execution-repository.js";
import { JOBS_CHANNEL, onJobsCreated } from "../storage/job-channels.js";
import { inboxCommitted } from "../storage/log-channels.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import { etlTriggerEvent } from "./etl-events.js";
import { finish, runImportExecution } from "./import-execution.js";

export const IMPORT_WORKER_DEFAULTS = {
  leaseMs: 30_000,
  pollMs: 2_000,
  /**
   * Rows per batch, per database: on PostgreSQL bigger batches cost fewer round trips and commits;
   * the embedded database runs each statement on the process's own thread, so a batch there is
   * also how long the process stops answering requests (about 0.2–0.5 s for 250 rows).
   */
  batchRows: { postgres: 1_000, pglite: 250 },
  /** Runs of one execution that ended in an unexpected error before it is given up as ERROR. */
  maxFailures: 5,
} as const;

export interface ImportWorkerOptions {
  db: Database;
  logger: Logger;
  config: Pick<HeraldConfig, "importConcurrency" | "maxExpandedBytes" | "workerId">;
  leaseMs?: number;
  pollMs?: number;
  batchRows?: number;
}

export interface ImportWorker extends BackgroundService {
  /** Look for work now (an execution was created in this process). */
  wake(): void;
}

type Mode = "idle" | "claiming" | "stopping";

export async function startImportWorker(options: ImportWorkerOptions): Promise<ImportWorker> {
  const { db, config } = options;
  const owner = `${config.workerId ?? `${hostname()}:${process.pid}`}:imports`;
  const logger = options.logger.child({ component: "imports", worker: owner });
  const leaseMs = options.leaseMs ?? IMPORT_WORKER_DEFAULTS.leaseMs;
  const pollMs = options.pollMs ?? IMPORT_WORKER_DEFAULTS.pollMs;
  const batchRows = options.batchRows ?? IMPORT_WORKER_DEFAULTS.batchRows[db.kind];
  let mode: Mode = "idle";
  let again = false;
  const running = new Map<string, Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  /** A database outage is logged once, not at every poll that fails because of it. */
  const outage = new DatabaseOutageLog(logger, "imports");

  const settings = {
    db,
    logger,
    owner,
    leaseMs,
    batchRows,
    maxExpandedBytes: config.maxExpandedBytes,
    stopping: () => mode === "stopping",
  };

  async function claimOne(): Promise<StoredExecution | undefined> {
    // A cheap look first: an idle poll opens no transaction.
    if (!(await hasRunnableExecution(db))) return undefined;
    const claimed = await db.transaction(async (tx) => {
      const claim = await claimExecution(tx, owner, leaseMs);
      if (claim?.started) {
        const entity = await findEntityById(tx, claim.execution.entityId);
        await appendChangeEvents(tx, [
          etlTriggerEvent(claim.execution, entity?.name ?? "", "STARTED"),
        ]);
      }
      return claim;
    });
    if (claimed?.started) inboxCommitted(db);
    return claimed?.execution;
  }

  /**
   * An unexpected error (the database gone, say) ended a run: the execution keeps its lease until
   * it expires, then any worker resumes it. After `maxFailures` such failures it ends ERROR. Never
   * throws: nothing awaits this until the worker stops.
   */
  async function giveUpOrRetry(execution: StoredExecution, error: unknown): Promise<void> {
    logger.error(
      { err: error, executionId: execution.id },
      "the import stopped on an unexpected error; it resumes from its checkpoint when its lease expires",
    );
    try {
      const failures = await recordExecutionFailure(db, execution.id, owner);
      if (failures === undefined || failures < IMPORT_WORKER_DEFAULTS.maxFailures) return;
      const entity = await findEntityById(db, execution.entityId);
      await finish(settings, execution.id, entity?.name ?? "", "ERROR", {
        code: "HERALD_IMPORT_FAILED",
        message: `The import could not finish: it failed ${failures} times, last with: ${(error as Error).message}`,
      });
    } catch (failure) {
      logger.warn(
        { err: failure, executionId: execution.id },
        "cannot record the import's failure; it is retried when its lease expires",
      );
    }
  }

  function run(execution: StoredExecution): void {
    const done = runImportExecution(settings, execution)
      .catch((error: unknown) => giveUpOrRetry(execution, error))
      .finally(() => {
        running.delete(execution.id);
        void look();
      });
    running.set(execution.id, done);
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
        while (running.size < config.importConcurrency) {
          const execution = await claimOne();
          if (!execution) break;
          run(execution);
        }
      } while (again && running.size < config.importConcurrency);
      outage.succeeded();
    } catch (error) {
      outage.failed(error, "cannot look for imports to run; will retry");
    } finally {
      if (mode === "claiming") mode = "idle";
    }
  }

  const unsubscribeLocal = onJobsCreated(db, () => void look());
  let unlisten: Unlisten | undefined;
  try {
    unlisten = await db.listen(JOBS_CHANNEL, () => void look());
  } catch (error) {
    logger.warn({ err: error }, `cannot LISTEN on ${JOBS_CHANNEL}; imports start on the poll only`);
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
    name: "imports",
    wake: () => void look(),
    stop: async () => {
      mode = "stopping";
      if (timer) clearTimeout(timer);
      unsubscribeLocal();
      await unlisten?.().catch(() => {});
      await Promise.allSettled([...running.values()]);
      // Hand what was running back at once instead of after the lease's life.
      await releaseExecutionLeases(db, owner).catch(() => {});
    },
  };
}
