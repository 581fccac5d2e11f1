/**
 * Runs one claimed file synchronisation to its end (SPEC §7.2, DESIGN §6b): fetch the reference's
 * file through its source (jobs/file-sources/), stream it into the file store, then, in one
 * transaction under the reference's row lock, compare it with the last file the reference
 * received and record the final status with its FINISHED event and the ETL executions it starts
 * (etl-launch.ts):
 * - SUCCESS: a new file (a different SHA-256 from the last one received, or the first);
 * - UNCHANGED: the same content as the last file received; the copy just stored is dropped and
 *   the synchronisation points at the stored file it equals (kept a full retention period more);
 * - NOT_FOUND: the source has no file there (`error` says where it looked);
 * - ERROR: the transfer failed (unreachable server, refused host key, wrong password, over the
 *   size limit, too slow…), with the reason in `error`.
 * A fetch has no checkpoint: a synchronisation whose worker died runs again from its start, and the
 * partial file of the interrupted run was never marked complete (housekeeping removes it). A file
 * is only ever presented once it is whole and its synchronisation has finished.
 */
import type { Logger } from "pino";
import { HeraldError } from "../domain/errors.js";
import { SecretKeyMismatch } from "../domain/secret-box.js";
import type { SecretBox } from "../domain/secret-box.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { Database } from "../storage/database.js";
import {
  findFileReference,
  loadFileReferenceSource,
} from "../storage/file-reference-repository.js";
import type {
  StoredSynchronization,
  SynchronizationOutcome,
} from "../storage/file-synchronization-repository.js";
import {
  finishSynchronization,
  keepFileFor,
  lastReceivedFile,
  renewSynchronizationLease,
} from "../storage/file-synchronization-repository.js";
import type { StoredFile } from "../storage/file-store.js";
import { deleteFile, FileTooLarge, storeFile } from "../storage/file-store.js";
import { notifyJobs } from "../storage/job-channels.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { LogSignals } from "../storage/log-signals.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import { startEtlRunsOfSynchronization } from "./etl-launch.js";
import type { TransferContext } from "./file-sources/index.js";
import { fetchSourceFile } from "./file-sources/index.js";
import { fileSyncTriggerEvent } from "./file-sync-events.js";

export interface FileSyncRunSettings {
  db: Database;
  /** FINISHED wakes this process's sequencer through them. */
  logSignals: LogSignals;
  /** The ETL runs a new file starts wake this process's workers through them. */
  jobSignals: JobSignals;
  logger: Logger;
  secrets: SecretBox;
  /** This worker's name in leases. */
  owner: string;
  leaseMs: number;
  retentionDays: number;
  transfer: Omit<TransferContext, "at" | "timeZone" | "signal">;
  /** Aborted when the worker stops: a transfer under way ends and the synchronisation is handed back. */
  stopSignal: AbortSignal;
}

/** The source failed: the synchronisation ends ERROR with this reason. */
class SourceFailed extends Error {
  override name = "SourceFailed";
}

/** The run stops without a final status (the worker stops, or its lease went to another). */
class RunInterrupted extends Error {
  override name = "RunInterrupted";
}

const failedOutcome = (reason: string): SynchronizationOutcome => ({
  status: "ERROR",
  file: null,
  error: {
    code: "HERALD_FILE_SYNC_FAILED",
    message: new HeraldError("HERALD_FILE_SYNC_FAILED", { reason }).message,
  },
});

/** How long closing a source's connection may take before the run goes on without it. */
const CLOSE_TIMEOUT_MS = 5_000;

/** Waits for a connection to close, at most `ms` (a server that never answers cannot hold a run). */
async function closeWithin(closing: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    closing.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The content as the file store reads it, ended by `signal` even when the source would not end:
 * a transfer error becomes SourceFailed (the file store's own errors pass as they are).
 */
async function* guarded(
  content: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const iterator = content[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await Promise.race([iterator.next(), aborted]);
      } catch (error) {
        if (signal.aborted) throw signal.reason as Error;
        throw new SourceFailed(reasonOf(error));
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    void iterator.return?.()?.catch?.(() => {});
  }
}

export async function runFileSynchronization(
  settings: FileSyncRunSettings,
  sync: StoredSynchronization,
): Promise<void> {
  const { db, owner } = settings;
  const log = settings.logger.child({
    synchronizationId: sync.id,
    fileReferenceId: sync.fileReferenceId,
  });
  const entity = await findEntityById(db, sync.entityId);
  const entityName = entity?.name ?? String(sync.entityId);
  const run = new AbortController();
  const timeoutMs = settings.transfer.timeoutMs;
  const interrupt = () => run.abort(new RunInterrupted("the worker stops or lost the lease"));
  // A safety net behind the transfer's own deadline (the same HERALD_FILE_FETCH_TIMEOUT_MS, whose
  // message says which step stalled): it fires only if something outside the transfer hangs.
  const timer = setTimeout(
    () =>
      run.abort(
        new SourceFailed(
          `the transfer took longer than ${timeoutMs} ms (HERALD_FILE_FETCH_TIMEOUT_MS) and was stopped`,
        ),
      ),
    timeoutMs + CLOSE_TIMEOUT_MS,
  );
  settings.stopSignal.addEventListener("abort", interrupt, { once: true });
  if (settings.stopSignal.aborted) interrupt();
  const heartbeat = setInterval(
    () => {
      renewSynchronizationLease(db, sync.id, owner, settings.leaseMs).then(
        (held) => {
          if (!held) interrupt();
        },
        () => {}, // a missed renewal is retried at the next beat
      );
    },
    Math.max(250, Math.floor(settings.leaseMs / 3)),
  );

  let outcome: SynchronizationOutcome | undefined;
  let stored: StoredFile | undefined;
  try {
    outcome = await transfer();
  } catch (error) {
    if (error instanceof RunInterrupted) {
      log.info("synchronisation interrupted; it runs again from its start");
      return;
    }
    throw error;
  } finally {
    clearTimeout(timer);
    clearInterval(heartbeat);
    settings.stopSignal.removeEventListener("abort", interrupt);
  }

  async function transfer(): Promise<SynchronizationOutcome | undefined> {
    let reference;
    try {
      reference = await loadFileReferenceSource(
        db,
        settings.secrets,
        sync.entityId,
        sync.fileReferenceId,
      );
    } catch (error) {
      if (error instanceof SecretKeyMismatch)
        return failedOutcome(`the reference's credentials cannot be opened: ${error.message}`);
      throw error;
    }
    if (!reference) return undefined; // deleted meanwhile: its synchronisations went with it
    const ctx: TransferContext = {
      ...settings.transfer,
      at: sync.fetchAt,
      timeZone: reference.timeZone,
      signal: run.signal,
    };
    try {
      let fetched;
      try {
        fetched = await fetchSourceFile(reference.source, ctx);
      } catch (error) {
        if (run.signal.aborted) throw run.signal.reason as Error;
        throw new SourceFailed(reasonOf(error));
      }
      if (!fetched.found)
        return {
          status: "NOT_FOUND",
          file: null,
          error: {
            code: "HERALD_SOURCE_FILE_NOT_FOUND",
            message: new HeraldError("HERALD_SOURCE_FILE_NOT_FOUND", {
              // Already fit to show: an HTTPS location is its origin and path (fetchSourceFile).
              location: fetched.location,
            }).message,
          },
        };
      try {
        stored = await storeFile(
          db,
          {
            entityId: sync.entityId,
            name: fetched.name,
            retentionDays: settings.retentionDays,
            maxBytes: settings.transfer.maxBytes,
          },
          guarded(fetched.content, run.signal),
        );
      } finally {
        await closeWithin(fetched.close(), CLOSE_TIMEOUT_MS);
      }
      return {
        status: "SUCCESS",
        file: { id: stored.id, name: stored.name, bytes: stored.bytes, sha256: stored.sha256 },
        error: null,
      };
    } catch (error) {
      if (error instanceof SourceFailed) return failedOutcome(error.message);
      if (error instanceof FileTooLarge)
        return failedOutcome(
          `the file is larger than ${error.limit} bytes, the largest Herald stores (HERALD_MAX_FILE_BYTES); nothing of it was kept`,
        );
      throw error;
    }
  }

  if (outcome === undefined) return;
  try {
    const done = await finishRun(settings, sync, entityName, outcome);
    if (!done && stored) await deleteFile(db, stored.id).catch(() => {});
    if (done)
      log.info({ status: done.status, error: done.error?.message }, "synchronisation finished");
  } catch (error) {
    if (stored) await deleteFile(db, stored.id).catch(() => {});
    throw error;
  }
}

/**
 * The final status, FINISHED and the ETL executions the file starts, in one transaction under the
 * reference's row lock (two synchronisations of one reference finishing together are compared one
 * after the other, so one file is new once). Undefined when the lease went meanwhile or the
 * reference was deleted.
 */
async function finishRun(
  settings: FileSyncRunSettings,
  sync: StoredSynchronization,
  entityName: string,
  outcome: SynchronizationOutcome,
): Promise<StoredSynchronization | undefined> {
  const { db, logSignals } = settings;
  let started = 0;
  const finished = await db.transaction(async (tx) => {
    const reference = await findFileReference(tx, sync.entityId, sync.fileReferenceId, true);
    if (!reference) return undefined;
    let final = outcome;
    let duplicate: string | undefined;
    if (outcome.status === "SUCCESS" && outcome.file) {
      const last = await lastReceivedFile(tx, sync.fileReferenceId, sync.id);
      if (last && last.sha256 === outcome.file.sha256) {
        final = { ...outcome, status: "UNCHANGED" };
        if (last.fileId !== null) {
          // The same bytes are stored already: point at them, keep them longer, drop the copy.
          duplicate = outcome.file.id ?? undefined;
          final = { ...final, file: { ...outcome.file, id: last.fileId } };
          await keepFileFor(tx, last.fileId, settings.retentionDays);
        }
      }
    }
    const done = await finishSynchronization(tx, sync.id, settings.owner, final);
    if (!done) return undefined;
    await appendChangeEvents(tx, [fileSyncTriggerEvent(done, entityName, "FINISHED")], logSignals);
    started = await startEtlRunsOfSynchronization(tx, done);
    if (started > 0) await notifyJobs(tx);
    if (duplicate !== undefined) await deleteFile(tx, duplicate);
    return done;
  });
  if (finished) logSignals.inboxCommitted();
  if (started > 0) settings.jobSignals.jobsCreated();
  return finished;
}
