/**
 * The file synchronisation worker (SPEC §7.2, DESIGN §6b): every process with the `worker` role
 * claims runnable synchronisations (PENDING, or RUNNING with an expired lease: their worker died)
 * under a lease and runs up to `fileSyncConcurrency` at once in the job loop of job-loop.ts. A
 * synchronisation has no checkpoint: one interrupted midway (a crash, a stop) simply runs again.
 */
import type { Logger } from "pino";
import { defaultWorkerId } from "../background-service.js";
import type { HeraldConfig } from "../config/config.js";
import type { SecretBox } from "../domain/secret-box.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { Database } from "../storage/database.js";
import type { StoredSynchronization } from "../storage/file-synchronization-repository.js";
import {
  claimSynchronization,
  finishSynchronization,
  hasRunnableSynchronization,
  recordSynchronizationFailure,
  releaseSynchronizationLeases,
} from "../storage/file-synchronization-repository.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { LogSignals } from "../storage/log-signals.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import { fileSyncTriggerEvent } from "./file-sync-events.js";
import { runFileSynchronization } from "./file-sync-run.js";
import type { JobLoop } from "./job-loop.js";
import { startJobLoop } from "./job-loop.js";

export const FILE_SYNC_WORKER_DEFAULTS = {
  leaseMs: 30_000,
  pollMs: 2_000,
  /** Runs of one synchronisation that ended in an unexpected error before it ends ERROR. */
  maxFailures: 5,
} as const;

export interface FileSyncWorkerOptions {
  db: Database;
  logSignals: LogSignals;
  jobSignals: JobSignals;
  logger: Logger;
  config: Pick<
    HeraldConfig,
    | "fileSyncConcurrency"
    | "fileFetchTimeoutMs"
    | "maxFileBytes"
    | "fileRetentionDays"
    | "allowInsecureTargets"
    | "fileDropDir"
    | "workerId"
  >;
  secrets: SecretBox;
  leaseMs?: number;
  pollMs?: number;
  /** Extra CA certificate(s) HTTPS sources trust (tests only). */
  trustedCa?: string | Buffer;
}

export type FileSyncWorker = JobLoop;

export async function startFileSyncWorker(options: FileSyncWorkerOptions): Promise<FileSyncWorker> {
  const { db, config, logSignals } = options;
  const owner = `${config.workerId ?? defaultWorkerId()}:file-sync`;
  const logger = options.logger.child({ component: "file-sync", worker: owner });
  const leaseMs = options.leaseMs ?? FILE_SYNC_WORKER_DEFAULTS.leaseMs;
  const stop = new AbortController();

  const settings = {
    db,
    logSignals,
    jobSignals: options.jobSignals,
    logger,
    secrets: options.secrets,
    owner,
    leaseMs,
    retentionDays: config.fileRetentionDays,
    transfer: {
      timeoutMs: config.fileFetchTimeoutMs,
      maxBytes: config.maxFileBytes,
      allowInsecureTargets: config.allowInsecureTargets,
      dropDir: config.fileDropDir,
      ...(options.trustedCa !== undefined ? { trustedCa: options.trustedCa } : {}),
    },
    stopSignal: stop.signal,
  };

  async function claim(): Promise<StoredSynchronization | undefined> {
    // A cheap look first: an idle poll opens no transaction.
    if (!(await hasRunnableSynchronization(db))) return undefined;
    const claimed = await db.transaction(async (tx) => {
      const claim = await claimSynchronization(tx, owner, leaseMs);
      if (claim?.started) {
        const entity = await findEntityById(tx, claim.synchronization.entityId);
        await appendChangeEvents(
          tx,
          [fileSyncTriggerEvent(claim.synchronization, entity?.name ?? "", "STARTED")],
          logSignals,
        );
      }
      return claim;
    });
    if (claimed?.started) logSignals.inboxCommitted();
    return claimed?.synchronization;
  }

  /**
   * An unexpected error (the database gone, say) ended a run: the synchronisation keeps its lease
   * until it expires, then any worker runs it again. After `maxFailures` such failures it ends
   * ERROR. Never throws.
   */
  async function giveUpOrRetry(sync: StoredSynchronization, error: unknown): Promise<void> {
    logger.error(
      { err: error, synchronizationId: sync.id },
      "the synchronisation stopped on an unexpected error; it runs again when its lease expires",
    );
    try {
      const failures = await recordSynchronizationFailure(db, sync.id, owner);
      if (failures === undefined || failures < FILE_SYNC_WORKER_DEFAULTS.maxFailures) return;
      const entity = await findEntityById(db, sync.entityId);
      const finished = await db.transaction(async (tx) => {
        const done = await finishSynchronization(tx, sync.id, owner, {
          status: "ERROR",
          file: null,
          error: {
            code: "HERALD_FILE_SYNC_FAILED",
            message: `The file could not be synchronised: it failed ${failures} times, last with: ${(error as Error).message}`,
          },
        });
        if (done)
          await appendChangeEvents(
            tx,
            [fileSyncTriggerEvent(done, entity?.name ?? "", "FINISHED")],
            logSignals,
          );
        return done;
      });
      if (finished) logSignals.inboxCommitted();
    } catch (failure) {
      logger.warn(
        { err: failure, synchronizationId: sync.id },
        "cannot record the synchronisation's failure; it is retried when its lease expires",
      );
    }
  }

  const loop = await startJobLoop({
    db,
    jobSignals: options.jobSignals,
    logger,
    name: "file synchronisations",
    pollMs: options.pollMs ?? FILE_SYNC_WORKER_DEFAULTS.pollMs,
    concurrency: config.fileSyncConcurrency,
    claim,
    keyOf: (sync) => sync.id,
    run: (sync) =>
      runFileSynchronization(settings, sync).catch((error: unknown) => giveUpOrRetry(sync, error)),
    releaseAll: () => releaseSynchronizationLeases(db, owner),
  });
  return {
    ...loop,
    stop: async () => {
      // Transfers under way end now; their synchronisations are handed back and run again.
      stop.abort();
      await loop.stop();
    },
  };
}
