/**
 * File references and their synchronisations (SPEC §7.2): CRUD of references (credentials
 * write-only), synchronisations on demand, their statuses and their files. The work itself is done
 * by workers (jobs/file-sync-worker.ts); schedules by the scheduler (jobs/etl-launch.ts handlers).
 */
import type { FastifyRequest } from "fastify";
import { HeraldError } from "../../domain/errors.js";
import type { ErrorDetail } from "../../domain/errors.js";
import type { ParsedFileReference } from "../../domain/file-reference-definition.js";
import { parseFileReferenceDefinition } from "../../domain/file-reference-definition.js";
import { describeFileSource } from "../../domain/file-source.js";
import { checkSourceTarget } from "../../jobs/file-sources/index.js";
import { fileReferenceHref, synchronizationHref } from "../../jobs/file-sync-events.js";
import type { StoredFileReference } from "../../storage/file-reference-repository.js";
import {
  deleteFileReference,
  fileReferenceUsers,
  findFileReference,
  insertFileReference,
  listFileReferences,
  openCredentials,
  updateFileReference,
} from "../../storage/file-reference-repository.js";
import type { StoredSynchronization } from "../../storage/file-synchronization-repository.js";
import {
  findSynchronization,
  insertSynchronization,
  listSynchronizations,
} from "../../storage/file-synchronization-repository.js";
import type { Queryable } from "../../storage/database.js";
import { findFile } from "../../storage/file-store.js";
import { createJob } from "../../storage/job-channels.js";
import {
  nextDueTimes,
  removeSchedule,
  saveOrRemoveSchedule,
} from "../../storage/schedule-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { authOf } from "../auth.js";
import { entityOf, paging, warningDetails } from "../import-requests.js";
import { sendStoredFile } from "../stored-file-download.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import type { RouteModule } from "./route-module.js";
import {
  EntityParams,
  FileReference,
  FileReferenceList,
  Paging,
  ReferenceBody,
  ReferenceParams,
  Synchronization,
  SynchronizationList,
  SynchronizationParams,
  SynchronizationQuery,
  SynchronizationStarted,
  TAG,
} from "./file-reference-schemas.js";
import { Type } from "typebox";

const V5 = "/v5/entities/:entity/file-references";

function referenceNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_FILE_REFERENCE_NOT_FOUND", { id, entity: entity.name });
}

function renderReference(
  deps: AppDeps,
  entity: Entity,
  reference: StoredFileReference,
  nextDue: Date | undefined,
  warnings: readonly ErrorDetail[] = [],
) {
  const self = fileReferenceHref(entity.name, reference.id);
  return {
    id: reference.id,
    name: reference.name,
    source: describeFileSource(reference.source, openCredentials(deps.secrets, reference)),
    schedule: reference.schedule,
    timezone: reference.timeZone,
    nextSynchronizationAt: nextDue?.toISOString() ?? null,
    createdAt: reference.createdAt.toISOString(),
    updatedAt: reference.updatedAt.toISOString(),
    ...warningDetails(warnings),
    _links: { self: { href: self }, synchronizations: { href: `${self}/synchronizations` } },
  };
}

async function renderOne(
  deps: AppDeps,
  entity: Entity,
  reference: StoredFileReference,
  warnings: readonly ErrorDetail[] = [],
) {
  const due = await nextDueTimes(deps.db, "FILE_SYNCHRONIZATION", [reference.id]);
  return renderReference(deps, entity, reference, due.get(reference.id), warnings);
}

function renderSynchronization(entity: Entity, sync: StoredSynchronization) {
  const self = synchronizationHref(entity.name, sync.fileReferenceId, sync.id);
  return {
    id: sync.id,
    fileReferenceId: sync.fileReferenceId,
    status: sync.status,
    createdAt: sync.createdAt.toISOString(),
    startedAt: sync.startedAt?.toISOString() ?? null,
    finishedAt: sync.finishedAt?.toISOString() ?? null,
    fileName: sync.fileName,
    bytes: sync.bytes,
    sha256: sync.sha256,
    error: sync.error,
    _links: {
      self: { href: self },
      fileReference: { href: fileReferenceHref(entity.name, sync.fileReferenceId) },
      ...(sync.fileId !== null ? { file: { href: `${self}/file` } } : {}),
    },
  };
}

/**
 * Checks a definition, including the address guard on the server it names (loopback, private and
 * link-local addresses are refused unless HERALD_ALLOW_INSECURE_TARGETS is on; the transfer checks
 * again at connect time). `current`: the reference a PUT replaces (its credentials may be kept).
 */
async function checkDefinition(
  deps: AppDeps,
  request: FastifyRequest,
  body: unknown,
  current?: StoredFileReference,
): Promise<ParsedFileReference> {
  const parsed = parseFileReferenceDefinition(body, {
    allowInsecureTargets: deps.config.allowInsecureTargets,
    dropDirSet: deps.config.fileDropDir !== undefined,
    ...(current
      ? {
          current: {
            source: current.source,
            credentials: openCredentials(deps.secrets, current),
          },
        }
      : {}),
  });
  const source = parsed.definition.source;
  const verdict = await checkSourceTarget(source, deps.config.allowInsecureTargets);
  const path = source.type === "HTTPS" ? "source.url" : "source.host";
  if (verdict?.kind === "refused")
    throw new HeraldError(
      "HERALD_INVALID_FILE_REFERENCE",
      { reason: `${path} is refused: ${verdict.reason}` },
      [
        {
          path,
          message: `${verdict.reason}: such servers are reachable only with HERALD_ALLOW_INSECURE_TARGETS=true`,
        },
      ],
    );
  if (verdict?.kind === "unresolved")
    request.log.warn(
      { host: verdict.host, reason: verdict.reason },
      "file reference host does not resolve; accepted, but its synchronisations fail until it does",
    );
  return parsed;
}

/** Saves or removes the reference's schedule, in the transaction that saves the reference. */
async function syncSchedule(tx: Queryable, entity: Entity, reference: StoredFileReference) {
  await saveOrRemoveSchedule(
    tx,
    { kind: "FILE_SYNCHRONIZATION", ownerId: reference.id, entityId: entity.id },
    reference.schedule,
  );
}

const fileReferenceRoutes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);

  async function referenceOf(request: FastifyRequest, params: { entity: string; id: string }) {
    const entity = await entityOf(deps, request, params.entity);
    const reference = await findFileReference(deps.db, entity.id, params.id);
    if (!reference) throw referenceNotFound(params.id, entity);
    return { entity, reference };
  }

  app.get(
    V5,
    {
      schema: {
        tags: [TAG],
        summary: "List the file references",
        params: EntityParams,
        querystring: Type.Object(Paging),
        response: { 200: FileReferenceList },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { references, total } = await listFileReferences(deps.db, entity.id, {
        offset,
        limit,
      });
      const due = await nextDueTimes(
        deps.db,
        "FILE_SYNCHRONIZATION",
        references.map((r) => r.id),
      );
      return {
        fileReferences: references.map((r) => renderReference(deps, entity, r, due.get(r.id))),
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
        summary: "Define a file reference (HTTPS, SFTP or DIRECTORY source, optional schedule)",
        params: EntityParams,
        body: ReferenceBody,
        response: { 201: FileReference },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const parsed = await checkDefinition(deps, request, request.body);
      const reference = await deps.db.transaction(async (tx) => {
        const inserted = await insertFileReference(tx, deps.secrets, entity.id, parsed.definition);
        if (inserted) await syncSchedule(tx, entity, inserted);
        return inserted;
      });
      if (!reference)
        throw new HeraldError("HERALD_NAME_TAKEN", {
          kind: "File reference",
          name: parsed.definition.name,
        });
      return reply
        .code(201)
        .header("location", fileReferenceHref(entity.name, reference.id))
        .send(await renderOne(deps, entity, reference, parsed.warnings));
    },
  );

  app.get(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "A file reference (by id or name); credentials are never shown",
        params: ReferenceParams,
        response: { 200: FileReference },
      },
    },
    async (request) => {
      const { entity, reference } = await referenceOf(request, request.params);
      return renderOne(deps, entity, reference);
    },
  );

  app.put(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "Replace a file reference (credentials left out are kept for the same server)",
        params: ReferenceParams,
        body: ReferenceBody,
        response: { 200: FileReference },
      },
    },
    async (request) => {
      const { entity, reference: current } = await referenceOf(request, request.params);
      const parsed = await checkDefinition(deps, request, request.body, current);
      const updated = await deps.db.transaction(async (tx) => {
        const row = await updateFileReference(
          tx,
          deps.secrets,
          entity.id,
          current.id,
          parsed.definition,
        );
        if (row && row !== "name-taken") await syncSchedule(tx, entity, row);
        return row;
      });
      if (updated === "name-taken")
        throw new HeraldError("HERALD_NAME_TAKEN", {
          kind: "File reference",
          name: parsed.definition.name,
        });
      if (!updated) throw referenceNotFound(request.params.id, entity);
      return renderOne(deps, entity, updated, parsed.warnings);
    },
  );

  app.delete(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Delete a file reference and its synchronisations (409 while an ETL or an export uses it)",
        params: ReferenceParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      await deps.db.transaction(async (tx) => {
        // Locked: an ETL saved meanwhile finds it still there, or waits and finds it gone.
        const reference = await findFileReference(tx, entity.id, request.params.id, true);
        if (!reference) throw referenceNotFound(request.params.id, entity);
        const users = await fileReferenceUsers(tx, entity.id, reference.id);
        if (users.length > 0)
          throw new HeraldError(
            "HERALD_FILE_REFERENCE_IN_USE",
            {
              id: reference.id,
              users: users.map((u) => `${u.kind} '${u.name}' (id ${u.id})`).join(", "),
            },
            users.map((u) => ({
              path: u.kind === "ETL" ? `etls/${u.id}` : `exports/${u.id}`,
              message: `${u.kind} '${u.name}' uses this file reference`,
            })),
          );
        await removeSchedule(tx, "FILE_SYNCHRONIZATION", reference.id);
        await deleteFileReference(tx, entity.id, reference.id);
      });
      return reply.code(204).send(null);
    },
  );

  app.post(
    `${V5}/:id/synchronizations`,
    {
      schema: {
        tags: [TAG],
        summary: "Synchronise the file now (a worker fetches it)",
        params: ReferenceParams,
        response: { 202: SynchronizationStarted },
      },
    },
    async (request, reply) => {
      const { entity, reference } = await referenceOf(request, request.params);
      const auth = authOf(request);
      const sync = await createJob(deps, (tx) =>
        insertSynchronization(tx, {
          entityId: entity.id,
          fileReferenceId: reference.id,
          origin: { kind: "API_KEY", apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName },
        }),
      );
      return reply
        .code(202)
        .header("location", synchronizationHref(entity.name, reference.id, sync.id))
        .send({ synchronizationId: sync.id });
    },
  );

  app.get(
    `${V5}/:id/synchronizations`,
    {
      schema: {
        tags: [TAG],
        summary: "A file reference's synchronisations, newest first",
        params: ReferenceParams,
        querystring: SynchronizationQuery,
        response: { 200: SynchronizationList },
      },
    },
    async (request) => {
      const { entity, reference } = await referenceOf(request, request.params);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { synchronizations, total } = await listSynchronizations(
        deps.db,
        entity.id,
        reference.id,
        request.query.status ? { status: request.query.status } : {},
        { offset, limit },
      );
      return {
        synchronizations: synchronizations.map((s) => renderSynchronization(entity, s)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  async function synchronizationOf(
    request: FastifyRequest,
    params: { entity: string; id: string; syncId: string },
  ) {
    const { entity, reference } = await referenceOf(request, params);
    const sync = await findSynchronization(deps.db, entity.id, reference.id, params.syncId);
    if (!sync)
      throw new HeraldError("HERALD_FILE_SYNCHRONIZATION_NOT_FOUND", {
        id: params.syncId,
        reference: reference.id,
      });
    return { entity, sync };
  }

  app.get(
    `${V5}/:id/synchronizations/:syncId`,
    {
      schema: {
        tags: [TAG],
        summary: "A synchronisation: status, file name, size, SHA-256, error",
        params: SynchronizationParams,
        response: { 200: Synchronization },
      },
    },
    async (request) => {
      const { entity, sync } = await synchronizationOf(request, request.params);
      return renderSynchronization(entity, sync);
    },
  );

  app.get(
    `${V5}/:id/synchronizations/:syncId/file`,
    {
      schema: {
        tags: [TAG],
        summary: "Download the file a synchronisation brought",
        params: SynchronizationParams,
        produces: ["application/octet-stream"],
      },
    },
    async (request, reply) => {
      const { sync } = await synchronizationOf(request, request.params);
      const gone = (reason: string) =>
        new HeraldError("HERALD_SYNCHRONIZED_FILE_GONE", { id: sync.id, reason });
      if (sync.status === "PENDING" || sync.status === "RUNNING")
        throw gone(`it has not finished yet (${sync.status})`);
      if (sync.status === "NOT_FOUND") throw gone("the source had no file (NOT_FOUND)");
      if (sync.status === "ERROR") throw gone("it ended ERROR; see its error");
      const file = sync.fileId === null ? undefined : await findFile(deps.db, sync.fileId);
      if (!file)
        throw gone(
          "the file expired and was removed (files are kept HERALD_FILE_RETENTION_DAYS days)",
        );
      // An UNCHANGED synchronisation serves the equal file stored earlier, under its own name.
      return sendStoredFile(reply, deps.db, file, {
        type: "application/octet-stream",
        fileName: sync.fileName ?? file.name,
        utf8Name: true,
      });
    },
  );
};

export default fileReferenceRoutes;
