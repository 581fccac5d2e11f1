/**
 * Imports (SPEC §7.1): one-shot executions, the executions with their rejected rows and cancel,
 * and Actito's legacy v4 import calls (predefined ETLs are etl-routes.ts). Every path also answers
 * under `/mass-imports` (service prefixes). Uploads stream into the file store (import-upload.ts);
 * the work itself is done by workers (jobs/import-worker.ts).
 */
import { stringify } from "csv-stringify";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import { parseEtlDefinition, parseEtlDefinitionText } from "../../domain/etl-definition.js";
import { etlTriggerEvent, executionHref } from "../../jobs/etl-events.js";
import { appendChangeEvents } from "../../storage/change-event-repository.js";
import {
  finishExecution,
  listExecutions,
  lockExecution,
  requestCancel,
} from "../../storage/etl-execution-repository.js";
import { readRejectedRows } from "../../storage/etl-rejected-rows.js";
import {
  acceptUploads,
  entityOf,
  executionBodies,
  executionBody,
  executionNotFound,
  executionOf,
  paging,
  startUploadedExecution,
  warningDetails,
} from "../import-requests.js";
import { DEFINITION_PARTS, missingPart } from "../import-upload.js";
import type { RouteModule } from "./route-module.js";
import {
  EntityParams,
  Execution,
  ExecutionList,
  ExecutionParams,
  ExecutionQuery,
  ExecutionStarted,
  LegacyExecutionStarted,
  MULTIPART_BODY_DOC,
  TAG,
  V4TableParams,
} from "./import-schemas.js";

const V5 = "/v5/entities/:entity";

const importRoutes: RouteModule = async (app, deps) => {
  await acceptUploads(app);

  app.post(
    `${V5}/etl-executions`,
    {
      schema: {
        tags: [TAG],
        summary: "Run a one-shot import: upload a file with its definition",
        description: MULTIPART_BODY_DOC,
        consumes: ["multipart/form-data"],
        params: EntityParams,
        response: { 202: ExecutionStarted },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { execution, warnings } = await startUploadedExecution(deps, request, entity, {
        etl: null,
        definitionOf: (upload) => {
          if (upload.definition === undefined) throw missingPart("etlDefinition", DEFINITION_PARTS);
          return parseEtlDefinitionText(upload.definition);
        },
      });
      return reply
        .code(202)
        .header("location", executionHref(entity.name, execution.id))
        .send({ executionId: execution.id, ...warningDetails(warnings) });
    },
  );

  app.get(
    `${V5}/etl-executions`,
    {
      schema: {
        tags: [TAG],
        summary: "List executions, newest first",
        params: EntityParams,
        querystring: ExecutionQuery,
        response: { 200: ExecutionList },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { etlId, status } = request.query;
      if (etlId !== undefined && !/^\d{1,15}$/.test(etlId))
        return { etlExecutions: [], page, pageSize, totalElements: 0 };
      const { executions, total } = await listExecutions(
        deps.db,
        entity.id,
        { ...(etlId !== undefined ? { etlId } : {}), ...(status ? { status } : {}) },
        { offset, limit },
      );
      const etlExecutions = await executionBodies(deps.db, entity.name, executions);
      return { etlExecutions, page, pageSize, totalElements: total };
    },
  );

  app.get(
    `${V5}/etl-executions/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "An execution: status, progress, counts, the first rejected rows",
        params: ExecutionParams,
        response: { 200: Execution },
      },
    },
    async (request) => {
      const { entity, execution } = await executionOf(deps, request, request.params);
      return executionBody(deps.db, entity.name, execution);
    },
  );

  app.get(
    `${V5}/etl-executions/:id/rejected-rows`,
    {
      schema: {
        tags: [TAG],
        summary: "Every rejected row, as CSV: line, original line, code, message (and column)",
        params: ExecutionParams,
        produces: ["text/csv"],
      },
    },
    async (request, reply) => {
      const { execution } = await executionOf(deps, request, request.params);
      const csv = stringify({
        header: true,
        columns: ["line", "originalLine", "code", "message", "column"],
      });
      // Read in pages of 1,000 while the CSV streams out: any number of rows, little memory.
      void (async () => {
        let after = 0;
        try {
          for (;;) {
            const rows = await readRejectedRows(deps.db, execution.id, after, 1000);
            for (const r of rows) {
              if (csv.destroyed) return; // the client went away
              if (!csv.write([r.line, r.raw, r.code, r.message, r.column ?? ""]))
                await new Promise((resolve) => {
                  csv.once("drain", resolve);
                  csv.once("close", resolve);
                });
            }
            if (rows.length < 1000) break;
            after = rows[rows.length - 1]!.line;
          }
          csv.end();
        } catch (error) {
          csv.destroy(error as Error);
        }
      })();
      return reply
        .type("text/csv; charset=utf-8")
        .header(
          "content-disposition",
          `attachment; filename="execution-${execution.id}-rejected-rows.csv"`,
        )
        .send(csv);
    },
  );

  app.post(
    `${V5}/etl-executions/:id/cancel`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Cancel an execution: a pending one ends at once, a running one after its current batch",
        params: ExecutionParams,
        response: { 202: Execution },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const id = request.params.id;
      const execution = await deps.logSignals.committingEvents(() =>
        deps.db.transaction(async (tx) => {
          const current = await lockExecution(tx, entity.id, id);
          if (!current) throw executionNotFound(id, entity);
          if (current.status === "PENDING") {
            const done = await finishExecution(tx, id, null, "CANCELLED", null);
            await appendChangeEvents(
              tx,
              [etlTriggerEvent(done!, entity.name, "FINISHED")],
              deps.logSignals,
            );
            return done!;
          }
          if (current.status !== "RUNNING")
            throw new HeraldError("HERALD_EXECUTION_FINISHED", { id, status: current.status });
          await requestCancel(tx, id);
          return { ...current, cancelRequested: true };
        }),
      );
      return reply.code(202).send(await executionBody(deps.db, entity.name, execution));
    },
  );

  // Legacy v4 ---------------------------------------------------------------------------------------

  const legacyImport =
    (kind: TableKind) =>
    async (
      request: FastifyRequest<{ Params: { entity: string; table: string } }>,
      reply: FastifyReply,
    ) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { execution, warnings } = await startUploadedExecution(deps, request, entity, {
        etl: null,
        definitionOf: (upload) => {
          // `parameters` as a JSON part, or Actito's parameter names as plain fields.
          const raw: Record<string, unknown> =
            upload.definition !== undefined ? parseJsonObject(upload.definition) : {};
          for (const [name, value] of upload.fields) raw[name] ??= value;
          return parseEtlDefinition({
            ...raw,
            target: { tableType: kind, table: request.params.table },
          });
        },
      });
      return reply
        .code(202)
        .header("location", `/v4/entity/${encodeURIComponent(entity.name)}/import/${execution.id}`)
        .send({ id: execution.id, ...warningDetails(warnings) });
    };

  const legacySchema = (what: string) => ({
    tags: [TAG],
    summary: `Import a file into a ${what} (Actito v4: parts inputFile + parameters)`,
    description:
      "multipart/form-data: `inputFile`, and `parameters` (JSON, or text fields) with `format` COMMA_SEPARATED_VALUES | SEMI_COLON_SEPARATED_VALUES | TAB_SEPARATED_VALUES, `charset`, `mode` CREATE_ONLY | UPDATE_ONLY | CREATE_UPDATE, `headerKeyColumn`",
    consumes: ["multipart/form-data"],
    params: V4TableParams,
    response: { 202: LegacyExecutionStarted },
  });
  app.post(
    "/v4/entity/:entity/table/:table/import",
    { schema: legacySchema("profile table") },
    legacyImport("PROFILE_TABLE"),
  );
  app.post(
    "/v4/entity/:entity/customTable/:table/import",
    { schema: legacySchema("custom table") },
    legacyImport("CUSTOM_TABLE"),
  );

  app.get(
    "/v4/entity/:entity/import/:id",
    {
      schema: {
        tags: [TAG],
        summary: "A v4 import's status (the execution)",
        params: ExecutionParams,
        response: { 200: Execution },
      },
    },
    async (request) => {
      const { entity, execution } = await executionOf(deps, request, request.params);
      return executionBody(deps.db, entity.name, execution);
    },
  );
};

function parseJsonObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HeraldError(
      "HERALD_INVALID_ETL_DEFINITION",
      { reason: `parameters is not valid JSON (${(error as Error).message})` },
      [{ path: "parameters", message: "is not valid JSON" }],
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new HeraldError(
      "HERALD_INVALID_ETL_DEFINITION",
      { reason: "parameters must be a JSON object" },
      [{ path: "parameters", message: "must be a JSON object" }],
    );
  return value as Record<string, unknown>;
}

export default importRoutes;
