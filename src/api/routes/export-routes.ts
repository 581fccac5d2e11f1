/**
 * Exports (SPEC §7.3): definitions (CRUD), executions (start, list, status) and the download of a
 * successful execution's file. Everything that can be checked is checked when the export is
 * defined (the table, each field, the filter's attributes, segmentation and subscription, the
 * destination reference, the schedule), so a bad definition is a 4xx, not an ERROR run later.
 */
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { DataTable } from "../../domain/data-table.js";
import type { ErrorDetail } from "../../domain/errors.js";
import { HeraldError } from "../../domain/errors.js";
import type { ExportDefinition } from "../../domain/export-definition.js";
import {
  checkAgainstTable,
  invalidDefinition,
  parseExportDefinition,
} from "../../domain/export-definition.js";
import { parseSchedule } from "../../domain/schedule.js";
import { exportExecutionHref, exportFileHref, exportHref } from "../../jobs/export-events.js";
import { exportContentType } from "../../jobs/export-file-writer.js";
import type { StoredExport, StoredExportExecution } from "../../storage/export-repository.js";
import {
  deleteExport,
  findExport,
  findExportExecution,
  insertExport,
  insertExportExecution,
  listExportExecutions,
  listExports,
  updateExport,
} from "../../storage/export-repository.js";
import { findFileReference } from "../../storage/file-reference-repository.js";
import { findFile } from "../../storage/file-store.js";
import { createJob } from "../../storage/job-channels.js";
import {
  nextDueTimes,
  removeSchedule,
  saveOrRemoveSchedule,
} from "../../storage/schedule-repository.js";
import type { Queryable } from "../../storage/database.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { authOf } from "../auth.js";
import { entityOf, paging } from "../import-requests.js";
import { sendStoredFile } from "../stored-file-download.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import type { RouteModule } from "./route-module.js";
import {
  EntityParams,
  ExecutionParams,
  ExecutionStarted,
  Export,
  ExportBody,
  ExportExecution,
  ExportExecutionList,
  ExportList,
  ExportParams,
  Paging,
  TAG,
} from "./export-schemas.js";

const V5 = "/v5/entities/:entity/exports";

function exportNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_EXPORT_NOT_FOUND", { id, entity: entity.name });
}

function renderExport(entity: Entity, exp: StoredExport, nextRunAt?: Date) {
  const d = exp.definition;
  return {
    id: exp.id,
    name: exp.name,
    source: { tableType: d.source.tableType, table: d.source.table },
    fields: d.fields,
    filter: d.filter as unknown as Record<string, unknown>,
    mode: d.mode,
    format: d.format,
    schedule: d.schedule,
    ...(nextRunAt ? { nextRunAt: nextRunAt.toISOString() } : {}),
    destination: d.destination,
    createdAt: exp.createdAt.toISOString(),
    updatedAt: exp.updatedAt.toISOString(),
    _links: {
      self: { href: exportHref(entity.name, exp.id) },
      executions: { href: `${exportHref(entity.name, exp.id)}/executions` },
    },
  };
}

export function renderExportExecution(entity: Entity, e: StoredExportExecution) {
  return {
    id: e.id,
    exportId: e.exportId,
    status: e.status,
    mode: e.mode,
    createdAt: e.createdAt.toISOString(),
    startedAt: e.startedAt?.toISOString() ?? null,
    finishedAt: e.finishedAt?.toISOString() ?? null,
    rowCount: e.rowCount,
    bytes: e.bytes,
    fileName: e.fileName,
    fromPosition: e.fromPosition,
    toPosition: e.toPosition,
    destination: e.destination,
    error: e.error,
    _links: {
      self: { href: exportExecutionHref(entity.name, e.exportId, e.id) },
      export: { href: exportHref(entity.name, e.exportId) },
      ...(e.status === "SUCCESS" && e.fileId !== null
        ? { file: { href: exportFileHref(entity.name, e.exportId, e.id) } }
        : {}),
    },
  };
}

/** The definition checked against the entity: table, fields, filter, destination, schedule. */
async function checkDefinition(
  deps: AppDeps,
  entity: Entity,
  body: unknown,
): Promise<{ definition: ExportDefinition; table: DataTable }> {
  const problems: ErrorDetail[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const definition = parseExportDefinition(
    body,
    add,
    (raw, addProblem, path) =>
      parseSchedule(raw, addProblem, path) as unknown as Record<string, unknown> | undefined,
  );
  const invalid = invalidDefinition(problems);
  if (invalid || !definition) throw invalid ?? invalidDefinition([{ path: "", message: "?" }])!;
  const table = await deps.tableCache.find(
    entity.id,
    definition.source.tableType,
    definition.source.table,
  );
  if (!table)
    throw new HeraldError(
      "HERALD_TABLE_NOT_FOUND",
      { table: definition.source.table, entity: entity.name },
      [{ path: "source.table", message: `no ${definition.source.tableType} has this id or name` }],
    );
  checkAgainstTable(definition, table);
  if (definition.destination) {
    const ref = definition.destination.fileReference;
    // Only its kind matters here: its credentials stay sealed.
    const reference = await findFileReference(deps.db, entity.id, ref);
    if (!reference)
      throw new HeraldError("HERALD_FILE_REFERENCE_NOT_FOUND", { id: ref, entity: entity.name }, [
        { path: "destination.fileReference", message: "no file reference has this id" },
      ]);
    if (reference.source.type !== "SFTP" && reference.source.type !== "DIRECTORY")
      throw invalidDefinition([
        {
          path: "destination.fileReference",
          message: `file reference '${reference.name}' is ${reference.source.type}; an export is copied to an SFTP or DIRECTORY reference only`,
        },
      ])!;
    // Stored by id, whichever way the request named it.
    definition.destination = { fileReference: reference.id };
  }
  return { definition, table: table };
}

/**
 * The parts of a definition an INCREMENTAL export's rows are made of: a change restarts it. Keys
 * are sorted, since the stored definition comes back from jsonb with its keys in another order.
 */
function rowShape(d: ExportDefinition, tableId: string): string {
  return JSON.stringify(sortedKeys([tableId, d.mode, d.fields, d.filter]));
}

function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

const exportRoutes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);

  async function exportOf(request: FastifyRequest, params: { entity: string; id: string }) {
    const entity = await entityOf(deps, request, params.entity);
    const exp = await findExport(deps.db, entity.id, params.id);
    if (!exp) throw exportNotFound(params.id, entity);
    return { entity, exp };
  }

  async function executionOf(
    request: FastifyRequest,
    params: { entity: string; id: string; executionId: string },
  ) {
    const { entity, exp } = await exportOf(request, params);
    const execution = await findExportExecution(deps.db, exp.id, params.executionId);
    if (!execution)
      throw new HeraldError("HERALD_EXPORT_EXECUTION_NOT_FOUND", {
        id: params.executionId,
        export: exp.id,
      });
    return { entity, exp, execution };
  }

  /** Saves or removes the export's schedule, in the transaction that saves the export. */
  async function syncSchedule(tx: Queryable, exp: StoredExport) {
    const schedule = exp.definition.schedule as { cron: string; timezone: string } | null;
    await saveOrRemoveSchedule(
      tx,
      { kind: "EXPORT", ownerId: exp.id, entityId: exp.entityId },
      schedule,
    );
  }

  async function renderOne(entity: Entity, exp: StoredExport) {
    const due = await nextDueTimes(deps.db, "EXPORT", [exp.id]);
    return renderExport(entity, exp, due.get(exp.id));
  }

  app.get(
    V5,
    {
      schema: {
        tags: [TAG],
        summary: "List the exports",
        params: EntityParams,
        querystring: Paging,
        response: { 200: ExportList },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { exports, total } = await listExports(deps.db, entity.id, { offset, limit });
      const due = await nextDueTimes(
        deps.db,
        "EXPORT",
        exports.map((e) => e.id),
      );
      return {
        exports: exports.map((e) => renderExport(entity, e, due.get(e.id))),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.post(
    V5,
    {
      schema: {
        tags: [TAG],
        summary: "Define an export (SPEC §7.3)",
        params: EntityParams,
        body: ExportBody,
        response: { 201: Export },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { definition, table } = await checkDefinition(deps, entity, request.body);
      const exp = await deps.db.transaction(async (tx) => {
        const inserted = await insertExport(tx, entity.id, definition, table.id);
        if (inserted) await syncSchedule(tx, inserted);
        return inserted;
      });
      if (!exp)
        throw new HeraldError("HERALD_NAME_TAKEN", { kind: "Export", name: definition.name });
      return reply
        .code(201)
        .header("location", exportHref(entity.name, exp.id))
        .send(await renderOne(entity, exp));
    },
  );

  app.get(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "An export (by id or name)",
        params: ExportParams,
        response: { 200: Export },
      },
    },
    async (request) => {
      const { entity, exp } = await exportOf(request, request.params);
      return renderOne(entity, exp);
    },
  );

  app.put(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Replace an export's definition (an INCREMENTAL export whose table, mode, fields or filter change starts over)",
        params: ExportParams,
        body: ExportBody,
        response: { 200: Export },
      },
    },
    async (request) => {
      const { entity, exp: current } = await exportOf(request, request.params);
      const { definition, table } = await checkDefinition(deps, entity, request.body);
      const restart =
        rowShape(definition, table.id) !== rowShape(current.definition, current.tableId);
      const updated = await deps.db.transaction(async (tx) => {
        const row = await updateExport(tx, entity.id, current.id, definition, table.id, restart);
        if (row && row !== "name-taken") await syncSchedule(tx, row);
        return row;
      });
      if (updated === "name-taken")
        throw new HeraldError("HERALD_NAME_TAKEN", { kind: "Export", name: definition.name });
      if (!updated) throw exportNotFound(request.params.id, entity);
      return renderOne(entity, updated);
    },
  );

  app.delete(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "Delete an export and its executions (their files expire with the file store's)",
        params: ExportParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const { entity, exp } = await exportOf(request, request.params);
      const deleted = await deps.db.transaction(async (tx) => {
        await removeSchedule(tx, "EXPORT", exp.id);
        return deleteExport(tx, entity.id, exp.id);
      });
      if (!deleted) throw exportNotFound(request.params.id, entity);
      return reply.code(204).send(null);
    },
  );

  app.post(
    `${V5}/:id/executions`,
    {
      schema: {
        tags: [TAG],
        summary: "Run the export now: a new execution, run by a worker",
        params: ExportParams,
        response: { 202: ExecutionStarted },
      },
    },
    async (request, reply) => {
      const { entity, exp } = await exportOf(request, request.params);
      const auth = authOf(request);
      const execution = await createJob(deps, (tx) =>
        insertExportExecution(tx, exp, {
          kind: "API_KEY",
          apiKeyId: auth.apiKeyId,
          apiKeyName: auth.apiKeyName,
        }),
      );
      return reply
        .code(202)
        .header("location", exportExecutionHref(entity.name, exp.id, execution.id))
        .send({ executionId: execution.id });
    },
  );

  app.get(
    `${V5}/:id/executions`,
    {
      schema: {
        tags: [TAG],
        summary: "The export's executions, the latest first",
        params: ExportParams,
        querystring: Paging,
        response: { 200: ExportExecutionList },
      },
    },
    async (request) => {
      const { entity, exp } = await exportOf(request, request.params);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { executions, total } = await listExportExecutions(deps.db, exp.id, { offset, limit });
      return {
        executions: executions.map((e) => renderExportExecution(entity, e)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.get(
    `${V5}/:id/executions/:executionId`,
    {
      schema: {
        tags: [TAG],
        summary: "One execution: status, rows, bytes, the log positions it covers",
        params: ExecutionParams,
        response: { 200: ExportExecution },
      },
    },
    async (request) => {
      const { entity, execution } = await executionOf(request, request.params);
      return renderExportExecution(entity, execution);
    },
  );

  app.get(
    `${V5}/:id/executions/:executionId/file`,
    {
      schema: {
        tags: [TAG],
        summary: "The file of a SUCCESS execution, streamed",
        params: ExecutionParams,
        produces: ["text/csv", "application/x-ndjson", "application/gzip", "application/zip"],
      },
    },
    async (request, reply) => {
      const { execution } = await executionOf(request, request.params);
      const notReady = (status: string) =>
        new HeraldError("HERALD_EXPORT_FILE_NOT_READY", { id: execution.id, status });
      if (execution.status !== "SUCCESS") throw notReady(execution.status);
      const file =
        execution.fileId === null ? undefined : await findFile(deps.db, execution.fileId);
      if (!file)
        throw notReady(
          "SUCCESS, but its file expired and was removed (files are kept HERALD_FILE_RETENTION_DAYS days)",
        );
      return sendStoredFile(reply, deps.db, file, {
        type: exportContentType(file.name),
        fileName: file.name,
      });
    },
  );
};

export default exportRoutes;
