/**
 * The import worker (DESIGN §6b): every process with the `worker` role claims runnable executions
 * (PENDING, or RUNNING with an expired lease: their worker died) under a lease and runs up to
 * `importConcurrency` at once, in the job loop of job-loop.ts: woken by an execution created in any
 * process, polling as a safety net, handing the running executions back at stop (the next worker
 * resumes them from their checkpoint).
 */
import type { Logger } from "pino";
import type { HeraldConfig } from "../config/config.js";
import { defaultWorkerId } from "../background-service.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { Database } from "../storage/database.js";
import type { StoredExecution } from "../storage/etl-execution-repository.js";
import {
  claimExecution,
  hasRunnableExecution,
  recordExecutionFailure,
  releaseExecutionLeases,
} from "../storage/etl-execution-repository.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { LogSignals } from "../storage/log-signals.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import { etlTriggerEvent } from "./etl-events.js";
import { finish, runImportExecution } from "./import-execution.js";
import type { JobLoop } from "./job-loop.js";
import { startJobLoop } from "./job-loop.js";

export const IMPORT_WORKER_DEFAULTS = {
  leaseMs: 30_000,
  pollMs: 2_000,
  /**
   * Rows per batch, per database: on PostgreSQL bigger batches cost fewer round trips and commits;
   * the embedded database runs each statement on the process's own thread, so a batch there is
   * also how long the process stops answering requests (docs/performance-notes.md, "Jobs").
   */
  batchRows: { postgres: 1_000, pglite: 250 },
  /** Runs of one execution that ended in an unexpected error before it is given up as ERROR. */
  maxFailures: 5,
} as const;

export interface ImportWorkerOptions {
  db: Database;
  logSignals: LogSignals;
  jobSignals: JobSignals;
  logger: Logger;
  config: Pick<HeraldConfig, "importConcurrency" | "maxExpandedBytes" | "workerId">;
  leaseMs?: number;
  pollMs?: number;
  batchRows?: number;
}

export type ImportWorker = JobLoop;

export async function startImportWorker(options: ImportWorkerOptions): Promise<ImportWorker> {
  const { db, config, logSignals } = options;
  const owner = `${config.workerId ?? defaultWorkerId()}:imports`;
  const logger = options.logger.child({ component: "imports", worker: owner });
  const leaseMs = options.leaseMs ?? IMPORT_WORKER_DEFAULTS.leaseMs;
  const batchRows = options.batchRows ?? IMPORT_WORKER_DEFAULTS.batchRows[db.kind];
  /** The loop, once started: a run asks it whether the worker is stopping. */
  const started: { loop?: JobLoop } = {};

  const settings = {
    db,
    logSignals,
    logger,
    owner,
    leaseMs,
    batchRows,
    maxExpandedBytes: config.maxExpandedBytes,
    stopping: () => started.loop?.stopping() ?? false,
  };

  async function claim(): Promise<StoredExecution | undefined> {
    // A cheap look first: an idle poll opens no transaction.
    if (!(await hasRunnableExecution(db))) return undefined;
    const claimed = await db.transaction(async (tx) => {
      const claim = await claimExecution(tx, owner, leaseMs);
      if (claim?.started) {
        const entity = await findEntityById(tx, claim.execution.entityId);
        await appendChangeEvents(
          tx,
          [etlTriggerEvent(claim.execution, entity?.name ?? "", "STARTED")],
          logSignals,
        );
      }
      return claim;
    });
    if (claimed?.started) logSignals.inboxCommitted();
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

  started.loop = await startJobLoop({
    db,
    jobSignals: options.jobSignals,
    logger,
    name: "imports",
    pollMs: options.pollMs ?? IMPORT_WORKER_DEFAULTS.pollMs,
    concurrency: config.importConcurrency,
    claim,
    keyOf: (execution) => execution.id,
    run: (execution) =>
      runImportExecution(settings, execution).catch((error: unknown) =>
        giveUpOrRetry(execution, error),
      ),
    releaseAll: () => releaseExecutionLeases(db, owner),
  });
  return started.loop;
}
