/**
 * The export worker (DESIGN §6b): every process with the `worker` role claims runnable export
 * executions (PENDING, or RUNNING with an expired lease: their worker died) under a lease and runs
 * up to `exportConcurrency` at once, in the job loop of job-loop.ts. An execution has no
 * checkpoint: one that was interrupted runs again from the start (export-run.ts says why nothing of
 * the interrupted run is left). Also: `exportScheduleHandler`, which the scheduler calls at each
 * due time of an export's schedule.
 */
import type { Logger } from "pino";
import type { HeraldConfig } from "../config/config.js";
import { defaultWorkerId } from "../background-service.js";
import type { SecretBox } from "../domain/secret-box.js";
import type { Database, Queryable } from "../storage/database.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { LogSignals } from "../storage/log-signals.js";
import type { StoredExportExecution } from "../storage/export-repository.js";
import {
  claimExportExecution,
  findExportById,
  hasRunnableExportExecution,
  insertExportExecution,
  recordExportFailure,
  releaseExportLeases,
} from "../storage/export-repository.js";
import { loadFileReferenceSource } from "../storage/file-reference-repository.js";
import { readFileStream } from "../storage/file-store.js";
import { notifyJobs } from "../storage/job-channels.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import type { DestinationCopier } from "./export-run.js";
import { ExportInterrupted, finish, runExportExecution } from "./export-run.js";
import { putDestinationFile } from "./file-sources/index.js";
import type { JobLoop } from "./job-loop.js";
import type { DueRun } from "./scheduler.js";
import { startJobLoop } from "./job-loop.js";

export const EXPORT_WORKER_DEFAULTS = {
  leaseMs: 30_000,
  pollMs: 2_000,
  /**
   * Rows per FETCH. On PostgreSQL, 1,000 rather than more: with Herald's small young generation
   * (--max-semi-space-size=4) two batches of 5,000 rows in flight make the scavenges copy them
   * (docs/performance-notes.md, "Jobs"). On the embedded database every statement
   * runs on the process's own thread.
   */
  batchRows: { postgres: 1_000, pglite: 500 },
  /** Runs of one execution that ended in an unexpected error before it is given up as ERROR. */
  maxFailures: 5,
} as const;

export interface ExportWorkerOptions {
  db: Database;
  logSignals: LogSignals;
  jobSignals: JobSignals;
  logger: Logger;
  config: Pick<
    HeraldConfig,
    | "exportConcurrency"
    | "workerId"
    | "maxFileBytes"
    | "fileRetentionDays"
    | "fileFetchTimeoutMs"
    | "fileDropDir"
    | "allowInsecureTargets"
  >;
  /** Opens the destination references' credentials: exports copy their files with it. */
  secrets?: SecretBox;
  /** How a file is copied to a destination reference (default: destinationCopier with `secrets`). */
  copy?: DestinationCopier;
  leaseMs?: number;
  pollMs?: number;
  batchRows?: number;
}

export type ExportWorker = JobLoop;

export async function startExportWorker(options: ExportWorkerOptions): Promise<ExportWorker> {
  const { db, config } = options;
  const owner = `${config.workerId ?? defaultWorkerId()}:exports`;
  const logger = options.logger.child({ component: "exports", worker: owner });
  const started: { loop?: JobLoop } = {};
  const settings = {
    db,
    logSignals: options.logSignals,
    logger,
    owner,
    leaseMs: options.leaseMs ?? EXPORT_WORKER_DEFAULTS.leaseMs,
    batchRows: options.batchRows ?? EXPORT_WORKER_DEFAULTS.batchRows[db.kind],
    retentionDays: config.fileRetentionDays,
    maxFileBytes: config.maxFileBytes,
    stopping: () => started.loop?.stopping() ?? false,
    copy:
      options.copy ??
      (options.secrets ? destinationCopier(db, options.secrets, config) : undefined),
  };
  /**
   * Executions this worker runs now. On the embedded database a long snapshot holds the only
   * session, so a lease renewal waits behind it and the lease may lapse: a claim of this worker
   * that finds its own running execution again leaves it to the run under way.
   */
  const running = new Set<string>();

  async function claim(): Promise<StoredExportExecution | undefined> {
    if (!(await hasRunnableExportExecution(db))) return undefined;
    return claimExportExecution(db, owner, settings.leaseMs);
  }

  /** An unexpected error ended a run: retried when its lease expires, ERROR after maxFailures. */
  async function giveUpOrRetry(execution: StoredExportExecution, error: unknown): Promise<void> {
    if (error instanceof ExportInterrupted) {
      logger.info(
        { executionId: execution.id, reason: error.message },
        "export interrupted; it runs again from the start",
      );
      return;
    }
    logger.error(
      { err: error, executionId: execution.id },
      "the export stopped on an unexpected error; it runs again from the start when its lease expires",
    );
    try {
      const failures = await recordExportFailure(db, execution.id, owner);
      if (failures === undefined || failures < EXPORT_WORKER_DEFAULTS.maxFailures) return;
      const exp = await findExportById(db, execution.exportId);
      if (!exp) return;
      const entity = await findEntityById(db, execution.entityId);
      await finish(settings, exp, entity?.name ?? "", execution.id, "ERROR", {
        error: {
          code: "HERALD_EXPORT_FAILED",
          message: `The export could not finish: it failed ${failures} times, last with: ${(error as Error).message}`,
        },
      });
    } catch (failure) {
      logger.warn(
        { err: failure, executionId: execution.id },
        "cannot record the export's failure; it is retried when its lease expires",
      );
    }
  }

  started.loop = await startJobLoop({
    db,
    jobSignals: options.jobSignals,
    logger,
    name: "exports",
    pollMs: options.pollMs ?? EXPORT_WORKER_DEFAULTS.pollMs,
    concurrency: config.exportConcurrency,
    claim,
    keyOf: (execution) => `${execution.id}:${execution.runs}`,
    run: async (execution) => {
      if (running.has(execution.id)) return;
      running.add(execution.id);
      try {
        await runExportExecution(settings, execution);
      } catch (error) {
        await giveUpOrRetry(execution, error);
      } finally {
        running.delete(execution.id);
      }
    },
    releaseAll: () => releaseExportLeases(db, owner),
  });
  return started.loop;
}

/**
 * Copies a stored file to an export's destination reference through part A's file sources: an
 * SFTP server or the drop directory, written under a temporary name and renamed when complete (no
 * partial file under the final name), within HERALD_FILE_FETCH_TIMEOUT_MS. Throws with the reason.
 */
export function destinationCopier(
  db: Database,
  secrets: SecretBox,
  config: Pick<
    HeraldConfig,
    "fileFetchTimeoutMs" | "maxFileBytes" | "fileDropDir" | "allowInsecureTargets"
  >,
): DestinationCopier {
  return async (entityId, fileReference, file) => {
    const reference = await loadFileReferenceSource(db, secrets, entityId, fileReference);
    if (!reference) throw new Error("the file reference no longer exists");
    if (reference.source.type === "HTTPS")
      throw new Error("it is an HTTPS reference; exports are copied to SFTP or DIRECTORY ones");
    const copied = await putDestinationFile(
      reference.source,
      file.name,
      readFileStream(db, file.id),
      {
        at: new Date(),
        timeZone: reference.timeZone,
        timeoutMs: config.fileFetchTimeoutMs,
        maxBytes: config.maxFileBytes,
        allowInsecureTargets: config.allowInsecureTargets,
        dropDir: config.fileDropDir,
      },
    );
    return copied.location;
  };
}

/**
 * The scheduler's handler for exports (part B's ScheduleHandler): a PENDING execution of the export
 * in the scheduler's transaction, which wakes the workers when it commits. An export deleted since
 * its schedule was read starts nothing.
 */
export async function exportScheduleHandler(tx: Queryable, due: DueRun): Promise<void> {
  const exp = await findExportById(tx, due.ownerId);
  if (!exp || exp.entityId !== due.entityId) return;
  await insertExportExecution(tx, exp, {
    kind: "SYSTEM",
    schedule: { dueAt: due.dueAt.toISOString() },
  });
  await notifyJobs(tx);
}
