/** What every profile and record call resolves first: the entity, the table and the change's origin. */
import type { FastifyRequest } from "fastify";
import { StaleTableDefinition } from "../../capture/write-retry.js";
import type { Origin } from "../../domain/change-event.js";
import type { DataTable, TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import { findUnstorableText, UNSTORABLE_TEXT_MESSAGE } from "../../domain/safe-text.js";
import { currentTableVersion } from "../../storage/data-table-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { authOf, resolveEntity } from "../auth.js";

export interface DataRouteContext {
  entity: Entity;
  table: DataTable;
  origin: Origin;
}

/**
 * Path and query strings reach SQL as text parameters; one holding a NUL (`%00`) or an unpaired
 * surrogate would make PostgreSQL fail the query. Answer 400 instead.
 */
export function assertStorableRequest(request: FastifyRequest): void {
  for (const [part, value] of [
    ["params", request.params],
    ["querystring", request.query],
  ] as const) {
    const path = findUnstorableText(value, part);
    if (path !== undefined)
      throw new HeraldError("HERALD_VALIDATION", { reason: `${path} ${UNSTORABLE_TEXT_MESSAGE}` }, [
        { path, message: UNSTORABLE_TEXT_MESSAGE },
      ]);
  }
}

export async function dataRouteContext(
  deps: AppDeps,
  request: FastifyRequest,
  params: { entity: string; table: string },
  kind: TableKind,
): Promise<DataRouteContext> {
  const auth = authOf(request);
  assertStorableRequest(request);
  const entity = await resolveEntity(deps.entityCache, auth, params.entity);
  const table = await deps.tableCache.find(entity.id, kind, params.table);
  if (!table)
    throw new HeraldError("HERALD_TABLE_NOT_FOUND", { table: params.table, entity: entity.name });
  return {
    entity,
    table,
    origin: { kind: "API_KEY", apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName },
  };
}

/** Tries of a write whose table's definition keeps changing under it (then 409 HERALD_CONFLICT). */
const DEFINITION_ATTEMPTS = 3;

/**
 * Resolves the context and runs a write with it. When the table's definition changed after it was
 * read (another process's change, or one committed while this request was under way), the write
 * has written nothing (StaleTableDefinition): the definition is read again and the request runs
 * again from its validation, so no record is ever written against a definition that is gone.
 * A refusal (400, 404, 422…) made with a cached definition is checked the same way before it is
 * answered: when the table has a newer definition, the request runs again with it.
 */
export async function withCurrentTable<T>(
  deps: AppDeps,
  request: FastifyRequest,
  params: { entity: string; table: string },
  kind: TableKind,
  write: (context: DataRouteContext) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const context = await dataRouteContext(deps, request, params, kind);
    try {
      return await write(context);
    } catch (error) {
      if (!(error instanceof StaleTableDefinition)) {
        if (!(error instanceof HeraldError)) throw error;
        const current = await currentTableVersion(deps.db, context.table.id);
        if (current === context.table.version) throw error;
      }
      deps.tableCache.forget();
      if (attempt >= DEFINITION_ATTEMPTS)
        throw new HeraldError("HERALD_CONFLICT", {
          reason: `the definition of table '${context.table.name}' kept changing during the write; retry the request`,
        });
    }
  }
}
