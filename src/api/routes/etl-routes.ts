/**
 * Predefined ETLs (SPEC §7.1): a named definition per entity (CRUD), and `trigger-execution`, which
 * runs one on an uploaded file. Every path also answers under `/mass-imports`.
 */

import { Type } from "typebox";
import { HeraldError } from "../../domain/errors.js";
import type { ParsedDefinition } from "../../domain/etl-definition.js";
import { parseEtlDefinition } from "../../domain/etl-definition.js";
import { etlHref, executionHref, MASS_IMPORTS_PREFIX } from "../../jobs/etl-events.js";
import type { StoredEtl } from "../../storage/etl-repository.js";
import {
  deleteEtl,
  findEtl,
  insertEtl,
  listEtls,
  updateEtl,
} from "../../storage/etl-repository.js";
import { nextDueTimes, removeSchedule } from "../../storage/schedule-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import {
  hasNoUpload,
  resolveEtlSource,
  saveEtlSchedule,
  startEtlOnLatestFile,
} from "../etl-file-launch.js";
import {
  acceptUploads,
  entityOf,
  paging,
  startUploadedExecution,
  targetTable,
  warningDetails,
} from "../import-requests.js";
import type { RouteModule } from "./route-module.js";
import {
  DefinitionBody,
  EntityParams,
  Etl,
  EtlList,
  EtlParams,
  ExecutionStarted,
  Paging,
  TAG,
} from "./import-schemas.js";

const V5 = "/v5/entities/:entity";

function etlNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_ETL_NOT_FOUND", { id, entity: entity.name });
}

function renderEtl(
  entity: Entity,
  etl: StoredEtl,
  nextRunAt: Date | undefined,
  warnings: ParsedDefinition["warnings"] = [],
) {
  const self = etlHref(entity.name, etl.id);
  return {
    id: etl.id,
    name: etl.name,
    definition: etl.definition as unknown as Record<string, unknown>,
    createdAt: etl.createdAt.toISOString(),
    updatedAt: etl.updatedAt.toISOString(),
    nextRunAt: nextRunAt?.toISOString() ?? null,
    ...warningDetails(warnings),
    _links: {
      self: { href: self },
      executions: {
        href: `${MASS_IMPORTS_PREFIX}/${encodeURIComponent(entity.name)}/etl-executions?etlId=${encodeURIComponent(etl.id)}`,
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
  await targetTable(deps.tableCache, entity, parsed.definition.target);
  // So must the file reference it reads (stored by id).
  await resolveEtlSource(deps.db, entity, parsed.definition);
  return { ...parsed, name };
}

const etlRoutes: RouteModule = async (app, deps) => {
  await acceptUploads(app);

  /** An ETL as answered, with the next due time of its schedule (when SCHEDULED). */
  async function renderOne(
    entity: Entity,
    etl: StoredEtl,
    warnings?: ParsedDefinition["warnings"],
  ) {
    const due = await nextDueTimes(deps.db, "ETL", [etl.id]);
    return renderEtl(entity, etl, due.get(etl.id), warnings);
  }

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
      const due = await nextDueTimes(
        deps.db,
        "ETL",
        etls.map((etl) => etl.id),
      );
      return {
        etls: etls.map((etl) => renderEtl(entity, etl, due.get(etl.id))),
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
      const etl = await deps.db.transaction(async (tx) => {
        const row = await insertEtl(tx, entity.id, parsed.name, parsed.definition);
        if (row) await saveEtlSchedule(tx, entity, row);
        return row;
      });
      if (!etl) throw new HeraldError("HERALD_NAME_TAKEN", { kind: "ETL", name: parsed.name });
      return reply
        .code(201)
        .header("location", etlHref(entity.name, etl.id))
        .send(await renderOne(entity, etl, parsed.warnings));
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
      return renderOne(entity, etl);
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
      const etl = await deps.db.transaction(async (tx) => {
        const row = await updateEtl(tx, entity.id, existing.id, parsed.name, parsed.definition);
        if (row && row !== "name-taken") await saveEtlSchedule(tx, entity, row);
        return row;
      });
      if (etl === "name-taken")
        throw new HeraldError("HERALD_NAME_TAKEN", { kind: "ETL", name: parsed.name });
      if (!etl) throw etlNotFound(request.params.etlId, entity);
      return renderOne(entity, etl, parsed.warnings);
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
      const deleted =
        etl !== undefined &&
        (await deps.db.transaction(async (tx) => {
          await removeSchedule(tx, "ETL", etl.id);
          return deleteEtl(tx, entity.id, etl.id);
        }));
      if (!deleted) throw etlNotFound(request.params.etlId, entity);
      return reply.code(204).send(null);
    },
  );

  app.post(
    `${V5}/etls/:etlId/trigger-execution`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Run a predefined ETL on an uploaded file (part inputFile), or without a body on its file reference's latest file",
        description:
          "multipart/form-data with a file part `inputFile` (aliases `file`, `dataFile`). An ETL whose `source.fileReference` names a file reference may be started with no body: it imports the latest file that reference synchronised (400 HERALD_NO_SYNCHRONIZED_FILE when there is none).",
        consumes: ["multipart/form-data"],
        params: EtlParams,
        response: { 202: ExecutionStarted },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const etl = await findEtl(deps.db, entity.id, request.params.etlId);
      if (!etl) throw etlNotFound(request.params.etlId, entity);
      if (etl.definition.source && hasNoUpload(request)) {
        const started = await startEtlOnLatestFile(deps, request, entity, etl);
        return reply
          .code(202)
          .header("location", executionHref(entity.name, started.id))
          .send({ executionId: started.id });
      }
      const { execution } = await startUploadedExecution(deps, request, entity, {
        etl: { id: etl.id, name: etl.name },
        definitionOf: () => ({ definition: etl.definition, warnings: [] }),
      });
      return reply
        .code(202)
        .header("location", executionHref(entity.name, execution.id))
        .send({ executionId: execution.id });
    },
  );
};

export default etlRoutes;
