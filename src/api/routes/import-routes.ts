/**
 * Imports (SPEC §7.1): one-shot executions, predefined ETLs and their trigger, the executions with
 * their rejected rows and cancel, and Actito's legacy v4 import calls. Every path also answers
 * under `/mass-imports` (service prefixes). Uploads stream into the file store (import-upload.ts);
 * the work itself is done by workers (jobs/import-worker.ts).
 */
import multipart from "@fastify/multipart";
import { stringify } from "csv-stringify";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Origin } from "../../domain/change-event.js";
import type { TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { ParsedDefinition } from "../../domain/etl-definition.js";
import { parseEtlDefinition, parseEtlDefinitionText } from "../../domain/etl-definition.js";
import { etlHref, etlTriggerEvent } from "../../jobs/etl-events.js";
import { appendChangeEvents } from "../../storage/change-event-repository.js";
import type { StoredEtl } from "../../storage/etl-repository.js";
import {
  deleteEtl,
  findEtl,
  findExecution,
  finishExecution,
  insertEtl,
  listEtls,
  listExecutions,
  lockExecution,
  readRejectedRows,
  requestCancel,
  updateEtl,
} from "../../storage/etl-repository.js";
import { deleteFile } from "../../storage/file-store.js";
import { committingEvents } from "../../storage/log-channels.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app.js";
import { authOf, resolveEntity } from "../auth.js";
import { executionBody, startExecution, targetTable, warningDetails } from "../import-requests.js";
import {
  DEFINITION_PARTS,
  FILE_PARTS,
  missingPart,
  receiveImportUpload,
} from "../import-upload.js";
import type { RouteModule } from "./index.js";
import {
  DefinitionBody,
  EntityParams,
  Etl,
  EtlList,
  EtlParams,
  Execution,
  ExecutionList,
  ExecutionParams,
  ExecutionQuery,
  ExecutionStarted,
  LegacyExecutionStarted,
  MULTIPART_BODY_DOC,
  Paging,
  TAG,
  V4TableParams,
} from "./import-schemas.js";

const V5 = "/v5/entities/:entity";

function originOf(request: FastifyRequest): Origin {
  const auth = authOf(request);
  return { kind: "API_KEY", apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName };
}

async function entityOf(deps: AppDeps, request: FastifyRequest, name: string): Promise<Entity> {
  return resolveEntity(deps.db, authOf(request), name);
}

function etlNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_ETL_NOT_FOUND", { id, entity: entity.name });
}

function executionNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_EXECUTION_NOT_FOUND", { id, entity: entity.name });
}

function renderEtl(entity: Entity, etl: StoredEtl, warnings: ParsedDefinition["warnings"] = []) {
  const self = etlHref(entity.name, etl.id);
  return {
    id: etl.id,
    name: etl.name,
    definition: etl.definition as unknown as Record<string, unknown>,
    createdAt: etl.createdAt.toISOString(),
    updatedAt: etl.updatedAt.toISOString(),
    ...warningDetails(warnings),
    _links: {
      self: { href: self },
      executions: {
        href: `/mass-imports/v5/entities/${encodeURIComponent(entity.name)}/etl-executions?etlId=${etl.id}`,
      },
    },
  };
}

/** A predefined ETL's definition: it must name itself. */
async function parseNamedDefinition(
  deps: AppDeps,
  entity: Entity,
  body: unknown,
): Promise<ParsedDefinition & { name: string }> {
  const parsed = parseEtlDefinition(body);
  const name = parsed.definition.name;
  if (name === undefined)
    throw new HeraldError("HERALD_INVALID_ETL_DEFINITION", { reason: "name is required" }, [
      { path: "name", message: "is required: a predefined ETL is found by its id or name" },
    ]);
  // The table must exist now (it is checked again at each execution).
  await targetTable(deps.db, entity, parsed.definition.target);
  return { ...parsed, name };
}

function paging(query: { page?: number; pageSize?: number }) {
  const page = query.page ?? 0;
  const pageSize = query.pageSize ?? 100;
  return { page, pageSize, offset: page * pageSize, limit: pageSize };
}

const importRoutes: RouteModule = async (app, deps) => {
  // Multipart bodies only here; busboy's limits are set per request (import-upload.ts).
  await app.register(multipart, { throwFileSizeLimit: false });
  const uploadOptions = (entity: Entity) => ({
    entityId: entity.id,
    maxFileBytes: deps.config.maxFileBytes,
    retentionDays: deps.config.fileRetentionDays,
  });

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
      const upload = await receiveImportUpload(request, deps.db, uploadOptions(entity));
      try {
        if (upload.definition === undefined) throw missingPart("etlDefinition", DEFINITION_PARTS);
        if (!upload.file) throw missingPart("inputFile", FILE_PARTS);
      } catch (error) {
        if (upload.file) await startExecutionCleanup(deps, upload.file.id);
        throw error;
      }
      let parsed: ParsedDefinition;
      try {
        parsed = parseEtlDefinitionText(upload.definition);
      } catch (error) {
        await startExecutionCleanup(deps, upload.file.id);
        throw error;
      }
      const execution = await startExecution(deps.db, {
        entity,
        definition: parsed.definition,
        file: upload.file,
        etl: null,
        origin: originOf(request),
        maxExpandedBytes: deps.config.maxExpandedBytes,
      });
      return reply
        .code(202)
        .header(
          "location",
          `/mass-imports${V5.replace(":entity", encodeURIComponent(entity.name))}/etl-executions/${execution.id}`,
        )
        .send({ executionId: execution.id, ...warningDetails(parsed.warnings) });
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
      const etlExecutions = [];
      for (const execution of executions)
        etlExecutions.push(await executionBody(deps.db, entity.name, execution));
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
      const entity = await entityOf(deps, request, request.params.entity);
      const execution = await findExecution(deps.db, entity.id, request.params.id);
      if (!execution) throw executionNotFound(request.params.id, entity);
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
      const entity = await entityOf(deps, request, request.params.entity);
      const execution = await findExecution(deps.db, entity.id, request.params.id);
      if (!execution) throw executionNotFound(request.params.id, entity);
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
              if (!csv.write([r.line, r.raw, r.code, r.message, r.column ?? ""]))
                await new Promise((resolve) => csv.once("drain", resolve));
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
      const execution = await committingEvents(deps.db, () =>
        deps.db.transaction(async (tx) => {
          const current = await lockExecution(tx, entity.id, id);
          if (!current) throw executionNotFound(id, entity);
          if (current.status === "PENDING") {
            const done = await finishExecution(tx, id, null, "CANCELLED", null);
            await appendChangeEvents(tx, [etlTriggerEvent(done!, entity.name, "FINISHED")]);
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

  // Predefined ETLs ---------------------------------------------------------------------------------

  app.get(
    `${V5}/etls`,
    {
      schema: {
        tags: [TAG],
        summary: "List the predefined ETLs",
        params: EntityParams,
        querystring: Type.Object(Paging),
        response: { 200: EtlList },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { etls, total } = await listEtls(deps.db, entity.id, { offset, limit });
      return {
        etls: etls.map((etl) => renderEtl(entity, etl)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.post(
    `${V5}/etls`,
    {
      schema: {
        tags: [TAG],
        summary: "Define a predefined ETL (the definition of §7.1, with a name)",
        params: EntityParams,
        body: DefinitionBody,
        response: { 201: Etl },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const parsed = await parseNamedDefinition(deps, entity, request.body);
      const etl = await insertEtl(deps.db, entity.id, parsed.name, parsed.definition);
      if (!etl) throw new HeraldError("HERALD_NAME_TAKEN", { kind: "ETL", name: parsed.name });
      return reply
        .code(201)
        .header(
          "location",
          `/mass-imports${etlHref(entity.name, etl.id).replace("/mass-imports", "")}`,
        )
        .send(renderEtl(entity, etl, parsed.warnings));
    },
  );

  app.get(
    `${V5}/etls/:etlId`,
    {
      schema: {
        tags: [TAG],
        summary: "A predefined ETL (by id or name)",
        params: EtlParams,
        response: { 200: Etl },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const etl = await findEtl(deps.db, entity.id, request.params.etlId);
      if (!etl) throw etlNotFound(request.params.etlId, entity);
      return renderEtl(entity, etl);
    },
  );

  app.put(
    `${V5}/etls/:etlId`,
    {
      schema: {
        tags: [TAG],
        summary: "Replace a predefined ETL's definition",
        params: EtlParams,
        body: DefinitionBody,
        response: { 200: Etl },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const existing = await findEtl(deps.db, entity.id, request.params.etlId);
      if (!existing) throw etlNotFound(request.params.etlId, entity);
      const parsed = await parseNamedDefinition(deps, entity, request.body);
      const etl = await updateEtl(deps.db, entity.id, existing.id, parsed.name, parsed.definition);
      if (etl === "name-taken")
        throw new HeraldError("HERALD_NAME_TAKEN", { kind: "ETL", name: parsed.name });
      if (!etl) throw etlNotFound(request.params.etlId, entity);
      return renderEtl(entity, etl, parsed.warnings);
    },
  );

  app.delete(
    `${V5}/etls/:etlId`,
    {
      schema: {
        tags: [TAG],
        summary: "Delete a predefined ETL (its executions stay, without their ETL)",
        params: EtlParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const etl = await findEtl(deps.db, entity.id, request.params.etlId);
      if (!etl || !(await deleteEtl(deps.db, entity.id, etl.id)))
        throw etlNotFound(request.params.etlId, entity);
      return reply.code(204).send(null);
    },
  );

  app.post(
    `${V5}/etls/:etlId/trigger-execution`,
    {
      schema: {
        tags: [TAG],
        summary: "Run a predefined ETL on an uploaded file (part inputFile)",
        description:
          "multipart/form-data with a file part `inputFile` (aliases `file`, `dataFile`). ETLs that read a file reference start without a body once file references exist.",
        consumes: ["multipart/form-data"],
        params: EtlParams,
        response: { 202: ExecutionStarted },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const etl = await findEtl(deps.db, entity.id, request.params.etlId);
      if (!etl) throw etlNotFound(request.params.etlId, entity);
      const upload = await receiveImportUpload(request, deps.db, uploadOptions(entity));
      if (!upload.file) throw missingPart("inputFile", FILE_PARTS);
      const execution = await startExecution(deps.db, {
        entity,
        definition: etl.definition,
        file: upload.file,
        etl: { id: etl.id, name: etl.name },
        origin: originOf(request),
        maxExpandedBytes: deps.config.maxExpandedBytes,
      });
      return reply
        .code(202)
        .header(
          "location",
          `/mass-imports/v5/entities/${encodeURIComponent(entity.name)}/etl-executions/${execution.id}`,
        )
        .send({ executionId: execution.id });
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
      const upload = await receiveImportUpload(request, deps.db, uploadOptions(entity));
      let parsed: ParsedDefinition;
      try {
        if (!upload.file) throw missingPart("inputFile", FILE_PARTS);
        // `parameters` as a JSON part, or Actito's parameter names as plain fields.
        const raw: Record<string, unknown> =
          upload.definition !== undefined ? parseJsonObject(upload.definition) : {};
        for (const [name, value] of upload.fields) raw[name] ??= value;
        parsed = parseEtlDefinition({
          ...raw,
          target: { tableType: kind, table: request.params.table },
        });
      } catch (error) {
        if (upload.file) await startExecutionCleanup(deps, upload.file.id);
        throw error;
      }
      const execution = await startExecution(deps.db, {
        entity,
        definition: parsed.definition,
        file: upload.file,
        etl: null,
        origin: originOf(request),
        maxExpandedBytes: deps.config.maxExpandedBytes,
      });
      return reply
        .code(202)
        .header("location", `/v4/entity/${encodeURIComponent(entity.name)}/import/${execution.id}`)
        .send({ id: execution.id, ...warningDetails(parsed.warnings) });
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
      const entity = await entityOf(deps, request, request.params.entity);
      const execution = await findExecution(deps.db, entity.id, request.params.id);
      if (!execution) throw executionNotFound(request.params.id, entity);
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

/** Removes an uploaded file whose request was refused. */
async function startExecutionCleanup(deps: AppDeps, fileId: string): Promise<void> {
  await deleteFile(deps.db, fileId).catch(() => {});
}

export default importRoutes;
