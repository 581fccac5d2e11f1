/**
 * How predefined ETLs start without an upload (SPEC §7.1 `launch`, §7.2), and the scheduler's
 * handlers for file references and ETLs:
 * - ON_FILE: a synchronisation of the ETL's file reference that brings a new file (SUCCESS, not
 *   UNCHANGED) creates one PENDING execution of the ETL on that stored file, in the transaction
 *   that finishes the synchronisation: exactly one execution per new file, crash or not.
 * - SCHEDULED: each due time creates a synchronisation of the ETL's file reference marked for the
 *   ETL; when it finishes with a file (SUCCESS or UNCHANGED: the file there at the due time) the
 *   ETL runs on it, in the same transaction. NOT_FOUND or ERROR: no execution; the
 *   synchronisation's FINISHED event and status say why.
 * - MANUAL (and any ETL, by trigger-execution without a body): the reference's latest file.
 * The executions are ordinary import executions (insertExecution): the import worker runs them.
 */
import type { DataTable } from "../domain/data-table.js";
import type { EtlDefinition } from "../domain/etl-definition.js";
import { findTable } from "../storage/data-table-repository.js";
import type { Queryable } from "../storage/database.js";
import type { StoredExecution } from "../storage/etl-execution-repository.js";
import { insertExecution } from "../storage/etl-execution-repository.js";
import { findEtl } from "../storage/etl-repository.js";
import { etlsReadingReference, findFileReference } from "../storage/file-reference-repository.js";
import type { StoredSynchronization } from "../storage/file-synchronization-repository.js";
import { insertSynchronization } from "../storage/file-synchronization-repository.js";
import { notifyJobs } from "../storage/job-channels.js";
import type { DueRun } from "./scheduler.js";

/** The table an ETL imports into, as the import routes resolve it; undefined when it is gone. */
export async function etlTargetTable(
  db: Queryable,
  entityId: number,
  definition: EtlDefinition,
): Promise<DataTable | undefined> {
  const { target } = definition;
  const kinds = target.tableType
    ? [target.tableType]
    : (["PROFILE_TABLE", "CUSTOM_TABLE"] as const);
  for (const kind of kinds) {
    const table = await findTable(db, entityId, kind, target.table);
    if (table) return table;
  }
  return undefined;
}

export interface EtlOnFile {
  entityId: number;
  etl: { id: string; name: string; definition: EtlDefinition };
  file: { id: string; name: string; bytes: number; sha256: string };
  origin: Record<string, unknown>;
}

/**
 * A PENDING execution of a predefined ETL on a stored file. A table deleted since the ETL was
 * defined leaves an execution that its worker ends ERROR with that reason.
 */
export async function insertEtlExecutionOnFile(
  tx: Queryable,
  run: EtlOnFile,
): Promise<StoredExecution> {
  const table = await etlTargetTable(tx, run.entityId, run.etl.definition);
  return insertExecution(tx, {
    entityId: run.entityId,
    etlId: run.etl.id,
    etlName: run.etl.name,
    definition: run.etl.definition,
    tableId: table?.id ?? "",
    file: run.file,
    origin: run.origin,
  });
}

/**
 * The executions a finished synchronisation starts (call it in the transaction that finishes it):
 * the ON_FILE ETLs reading its reference when it brought a new file, and the SCHEDULED ETL that
 * asked for it when it brought any file. Returns how many it created.
 */
export async function startEtlRunsOfSynchronization(
  tx: Queryable,
  sync: StoredSynchronization,
): Promise<number> {
  if (sync.status !== "SUCCESS" && sync.status !== "UNCHANGED") return 0;
  if (sync.fileId === null || sync.fileName === null || sync.sha256 === null) return 0;
  const file = {
    id: sync.fileId,
    name: sync.fileName,
    bytes: sync.bytes ?? 0,
    sha256: sync.sha256,
  };
  const etls = await etlsReadingReference(tx, sync.entityId, sync.fileReferenceId);
  let created = 0;
  for (const etl of etls) {
    const launch = etl.definition.launch?.type ?? "MANUAL";
    const onFile = launch === "ON_FILE" && sync.status === "SUCCESS";
    const scheduled = sync.runEtlId === etl.id;
    if (!onFile && !scheduled) continue;
    await insertEtlExecutionOnFile(tx, {
      entityId: sync.entityId,
      etl,
      file,
      origin: {
        kind: "SYSTEM",
        trigger: onFile ? "ON_FILE" : "SCHEDULE",
        fileReferenceId: sync.fileReferenceId,
        fileSynchronizationId: sync.id,
      },
    });
    created++;
  }
  return created;
}

/** The scheduler's handler for a file reference's schedule: a PENDING synchronisation. */
export async function fileSyncScheduleHandler(tx: Queryable, due: DueRun): Promise<void> {
  const reference = await findFileReference(tx, due.entityId, due.ownerId);
  if (!reference || reference.id !== due.ownerId)
    throw new Error(`file reference ${due.ownerId} no longer exists; nothing to synchronise`);
  await insertSynchronization(tx, {
    entityId: due.entityId,
    fileReferenceId: reference.id,
    origin: { kind: "SYSTEM", trigger: "SCHEDULE", dueAt: due.dueAt.toISOString() },
    fetchAt: due.dueAt,
  });
  await notifyJobs(tx);
}

/**
 * The scheduler's handler for a SCHEDULED ETL: a synchronisation of its file reference whose file
 * the ETL then imports (see above).
 */
export async function etlScheduleHandler(tx: Queryable, due: DueRun): Promise<void> {
  const etl = await findEtl(tx, due.entityId, due.ownerId);
  if (!etl || etl.id !== due.ownerId)
    throw new Error(`ETL ${due.ownerId} no longer exists; nothing to run`);
  const referenceId = etl.definition.source?.fileReference;
  if (etl.definition.launch?.type !== "SCHEDULED" || referenceId === undefined)
    throw new Error(`ETL ${etl.id} is no longer SCHEDULED on a file reference; nothing to run`);
  await insertSynchronization(tx, {
    entityId: due.entityId,
    fileReferenceId: referenceId,
    origin: {
      kind: "SYSTEM",
      trigger: "SCHEDULE",
      etlId: etl.id,
      dueAt: due.dueAt.toISOString(),
    },
    fetchAt: due.dueAt,
    runEtlId: etl.id,
  });
  await notifyJobs(tx);
}
