/**
 * What the ETL routes add for ETLs that read a file reference (SPEC §7.1 `source`, `launch`): the
 * reference checked at definition time (and stored by id), the ETL's schedule saved with it, and
 * trigger-execution without a body, which imports the reference's latest synchronised file.
 */
import type { FastifyRequest } from "fastify";
import type { EtlDefinition } from "../domain/etl-definition.js";
import { HeraldError } from "../domain/errors.js";
import { etlTargetTable, insertEtlExecutionOnFile } from "../jobs/etl-launch.js";
import type { Queryable } from "../storage/database.js";
import type { StoredEtl } from "../storage/etl-repository.js";
import type { StoredExecution } from "../storage/etl-execution-repository.js";
import { findFileReference } from "../storage/file-reference-repository.js";
import { lastReceivedFile } from "../storage/file-synchronization-repository.js";
import { createJob } from "../storage/job-channels.js";
import { saveOrRemoveSchedule } from "../storage/schedule-repository.js";
import type { Entity } from "../storage/tenancy-repository.js";
import type { AppDeps } from "./app-deps.js";
import { authOf } from "./auth.js";

/**
 * Checks that the file reference a definition reads exists in the entity (404 otherwise) and
 * names it by its id from now on (a reference renamed later is still the one meant).
 */
export async function resolveEtlSource(
  db: Queryable,
  entity: Entity,
  definition: EtlDefinition,
): Promise<void> {
  if (!definition.source) return;
  const named = definition.source.fileReference;
  const reference = await findFileReference(db, entity.id, named);
  if (!reference)
    throw new HeraldError("HERALD_FILE_REFERENCE_NOT_FOUND", { id: named, entity: entity.name }, [
      { path: "source.fileReference", message: `no file reference '${named}' in this entity` },
    ]);
  definition.source = { fileReference: reference.id };
}

/** Saves a SCHEDULED ETL's schedule, or removes it, in the transaction that saves the ETL. */
export async function saveEtlSchedule(
  tx: Queryable,
  entity: Entity,
  etl: Pick<StoredEtl, "id" | "definition">,
): Promise<void> {
  const launch = etl.definition.launch;
  await saveOrRemoveSchedule(
    tx,
    { kind: "ETL", ownerId: etl.id, entityId: entity.id },
    launch?.type === "SCHEDULED" ? { cron: launch.cron, timezone: launch.timezone } : null,
  );
}

/** True when a trigger-execution request carries no upload (no multipart body). */
export function hasNoUpload(request: FastifyRequest): boolean {
  const type = request.headers["content-type"];
  return typeof type !== "string" || !type.toLowerCase().startsWith("multipart/");
}

/**
 * Starts an execution of the ETL on the latest file its reference received (SUCCESS or
 * UNCHANGED, still in the file store); 400 with the reason when there is none.
 */
export async function startEtlOnLatestFile(
  deps: AppDeps,
  request: FastifyRequest,
  entity: Entity,
  etl: StoredEtl,
): Promise<StoredExecution> {
  const referenceId = etl.definition.source?.fileReference;
  if (referenceId === undefined)
    throw new HeraldError("HERALD_MULTIPART_EXPECTED", {
      contentType: request.headers["content-type"] ?? "none",
    });
  const noFile = (reason: string) =>
    new HeraldError("HERALD_NO_SYNCHRONIZED_FILE", { etl: etl.id, reference: referenceId, reason });
  const last = await lastReceivedFile(deps.db, referenceId);
  if (!last)
    throw noFile(
      `no synchronisation of it has brought a file yet; POST …/file-references/${referenceId}/synchronizations first, or upload the file (part inputFile)`,
    );
  if (last.fileId === null)
    throw noFile(
      "its latest file expired from the file store (HERALD_FILE_RETENTION_DAYS); synchronise it again",
    );
  // The table must exist now (the worker checks again when it runs).
  if (!(await etlTargetTable(deps.db, entity.id, etl.definition)))
    throw new HeraldError("HERALD_TABLE_NOT_FOUND", {
      table: etl.definition.target.table,
      entity: entity.name,
    });
  const auth = authOf(request);
  const fileId = last.fileId;
  return createJob(deps, (tx) =>
    insertEtlExecutionOnFile(tx, {
      entityId: entity.id,
      etl,
      file: { id: fileId, name: last.name, bytes: last.bytes, sha256: last.sha256 },
      origin: { kind: "API_KEY", apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName },
    }),
  );
}
