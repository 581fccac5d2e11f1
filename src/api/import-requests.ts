/**
 * What the import routes share: starting an execution from an uploaded file and a definition
 * (every check that can be made before anything runs: the definition, the table, the mapping, the
 * file's header, so a bad request is a 4xx and leaves nothing behind), and the execution's JSON
 * (SPEC §7.1).
 */
import multipart from "@fastify/multipart";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { TableCache } from "./table-cache.js";
import type { Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import type { ErrorDetail } from "../domain/errors.js";
import { HeraldError } from "../domain/errors.js";
import type { EtlDefinition, ParsedDefinition } from "../domain/etl-definition.js";
import { executionHref, etlHref } from "../jobs/etl-events.js";
import { ImportFileError, openImportReader } from "../jobs/import-file-reader.js";
import { bindImport, planColumns } from "../jobs/import-rows.js";
import type { Database } from "../storage/database.js";
import type { StoredExecution } from "../storage/etl-execution-repository.js";
import type { RejectedRow } from "../storage/etl-rejected-rows.js";
import { findExecution, insertExecution } from "../storage/etl-execution-repository.js";
import { readFirstRejectedRows } from "../storage/etl-rejected-rows.js";
import type { StoredFile } from "../storage/file-store.js";
import { deleteFile } from "../storage/file-store.js";
import { notifyJobs } from "../storage/job-channels.js";
import type { Entity } from "../storage/tenancy-repository.js";
import type { AppDeps } from "./app-deps.js";
import type { ImportUpload } from "./import-upload.js";
import { FILE_PARTS, missingPart, receiveImportUpload } from "./import-upload.js";
import { authOf, resolveEntity } from "./auth.js";

/** The table a definition names: by its type when given, else a profile table first. */
export async function targetTable(
  tables: TableCache,
  entity: Entity,
  target: EtlDefinition["target"],
): Promise<DataTable> {
  const kinds = target.tableType
    ? [target.tableType]
    : (["PROFILE_TABLE", "CUSTOM_TABLE"] as const);
  for (const kind of kinds) {
    const table = await tables.find(entity.id, kind, target.table);
    if (table) return table;
  }
  throw new HeraldError("HERALD_TABLE_NOT_FOUND", { table: target.table, entity: entity.name }, [
    {
      path: "target.table",
      message: `no ${target.tableType ?? "profile or custom"} table has this id or name`,
    },
  ]);
}

/**
 * Checks the file's header against the definition (400 HERALD_INVALID_FILE or
 * HERALD_UNKNOWN_ATTRIBUTE), reading only its first lines.
 */
async function checkHeader(
  db: Database,
  file: StoredFile,
  definition: EtlDefinition,
  table: DataTable,
  maxExpandedBytes: number,
): Promise<void> {
  const bound = bindImport(definition, table);
  let reader;
  try {
    reader = await openImportReader(db, file, definition.file, { maxExpandedBytes });
  } catch (error) {
    if (error instanceof ImportFileError)
      throw new HeraldError("HERALD_INVALID_FILE", { reason: error.message }, [
        { path: "inputFile", message: error.message },
      ]);
    throw error;
  }
  try {
    // NDJSON with a mapping: rows may hold any of the mapped keys; nothing to check in one line.
    if (definition.file.format === "CSV" || !definition.mapping) planColumns(bound, reader.header);
  } finally {
    reader.close();
  }
}

interface StartRequest {
  entity: Entity;
  definition: EtlDefinition;
  file: StoredFile;
  etl: { id: string; name: string } | null;
  origin: Origin;
  maxExpandedBytes: number;
}

/** Checks everything, then records the execution for the workers. The file is removed on a 4xx. */
async function startExecution(deps: AppDeps, start: StartRequest): Promise<StoredExecution> {
  const { db } = deps;
  let execution: StoredExecution;
  try {
    const table = await targetTable(deps.tableCache, start.entity, start.definition.target);
    await checkHeader(db, start.file, start.definition, table, start.maxExpandedBytes);
    execution = await db.transaction(async (tx) => {
      const row = await insertExecution(tx, {
        entityId: start.entity.id,
        etlId: start.etl?.id ?? null,
        etlName: start.etl?.name ?? null,
        definition: start.definition,
        tableId: table.id,
        file: start.file,
        origin: start.origin,
      });
      await notifyJobs(tx);
      return row;
    });
  } catch (error) {
    await deleteFile(db, start.file.id).catch(() => {});
    throw error;
  }
  deps.jobSignals.jobsCreated();
  return execution;
}

/** How many rejected rows an execution's JSON lists (the file has them all). */
export const REJECTED_ROWS_SHOWN = 100;

function renderExecution(
  entityName: string,
  execution: StoredExecution,
  rejectedRows: readonly RejectedRow[],
) {
  const self = executionHref(entityName, execution.id);
  return {
    id: execution.id,
    etlId: execution.etlId,
    status: execution.status,
    createdAt: execution.createdAt.toISOString(),
    startedAt: execution.startedAt?.toISOString() ?? null,
    finishedAt: execution.finishedAt?.toISOString() ?? null,
    file: execution.file,
    progress: {
      bytesRead: execution.bytesRead,
      bytesTotal: execution.file.bytes,
      rowsRead: execution.counts.read,
    },
    counts: execution.counts,
    rejectedRows: rejectedRows.map((r) => ({
      line: r.line,
      column: r.column,
      code: r.code,
      message: r.message,
    })),
    error: execution.error,
    _links: {
      self: { href: self },
      rejectedRows: { href: `${self}/rejected-rows` },
      ...(execution.etlId !== null ? { etl: { href: etlHref(entityName, execution.etlId) } } : {}),
    },
  };
}

export async function executionBody(db: Database, entityName: string, execution: StoredExecution) {
  return (await executionBodies(db, entityName, [execution]))[0]!;
}

/** Executions as their JSON, the first rejected rows of all of them read in one statement. */
export async function executionBodies(
  db: Database,
  entityName: string,
  executions: readonly StoredExecution[],
) {
  const withRejections = executions.filter((e) => e.counts.rejected > 0).map((e) => e.id);
  const rejected = await readFirstRejectedRows(db, withRejections, REJECTED_ROWS_SHOWN);
  return executions.map((e) => renderExecution(entityName, e, rejected.get(e.id) ?? []));
}

/** `{entity}` and `{id}` of an execution route: the execution, or 404. */
export async function executionOf(
  deps: AppDeps,
  request: FastifyRequest,
  params: { entity: string; id: string },
): Promise<{ entity: Entity; execution: StoredExecution }> {
  const entity = await entityOf(deps, request, params.entity);
  const execution = await findExecution(deps.db, entity.id, params.id);
  if (!execution) throw executionNotFound(params.id, entity);
  return { entity, execution };
}

export function executionNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_EXECUTION_NOT_FOUND", { id, entity: entity.name });
}

/** The 202 answer's `details`: the definition's ignored keys. */
export function warningDetails(warnings: readonly ErrorDetail[]): { details?: ErrorDetail[] } {
  return warnings.length > 0 ? { details: [...warnings] } : {};
}

/** Who started an execution through the API. */
function originOf(request: FastifyRequest): Origin {
  const auth = authOf(request);
  return { kind: "API_KEY", apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName };
}

export async function entityOf(
  deps: AppDeps,
  request: FastifyRequest,
  name: string,
): Promise<Entity> {
  return resolveEntity(deps.entityCache, authOf(request), name);
}

/** `?page=&pageSize=` as an offset and a limit. */
export function paging(query: { page?: number; pageSize?: number }) {
  const page = query.page ?? 0;
  const pageSize = query.pageSize ?? 100;
  return { page, pageSize, offset: page * pageSize, limit: pageSize };
}

/**
 * Multipart bodies for the routes of one module (a Fastify scope); busboy's limits are set per
 * request (import-upload.ts), and a file past them is marked truncated rather than thrown.
 */
export async function acceptUploads(app: FastifyInstance): Promise<void> {
  await app.register(multipart, { throwFileSizeLimit: false });
}

function uploadOptions(deps: AppDeps, entity: Entity) {
  return {
    entityId: entity.id,
    maxFileBytes: deps.config.maxFileBytes,
    retentionDays: deps.config.fileRetentionDays,
  };
}

/** Removes an uploaded file whose request was refused. */
async function discardUpload(db: Database, fileId: string): Promise<void> {
  await deleteFile(db, fileId).catch(() => {});
}

/**
 * Receives an upload (import-upload.ts) and starts an execution of it. `definitionOf` reads the
 * definition from the upload; whatever it or the checks refuse (a 4xx), the stored file goes.
 */
export async function startUploadedExecution(
  deps: AppDeps,
  request: FastifyRequest,
  entity: Entity,
  options: {
    etl: { id: string; name: string } | null;
    definitionOf(upload: ImportUpload): ParsedDefinition;
  },
): Promise<{ execution: StoredExecution; warnings: ErrorDetail[] }> {
  const upload = await receiveImportUpload(request, deps.db, uploadOptions(deps, entity));
  let parsed: ParsedDefinition;
  try {
    if (!upload.file) throw missingPart("inputFile", FILE_PARTS);
    parsed = options.definitionOf(upload);
  } catch (error) {
    if (upload.file) await discardUpload(deps.db, upload.file.id);
    throw error;
  }
  const execution = await startExecution(deps, {
    entity,
    definition: parsed.definition,
    file: upload.file,
    etl: options.etl,
    origin: originOf(request),
    maxExpandedBytes: deps.config.maxExpandedBytes,
  });
  return { execution, warnings: parsed.warnings };
}
