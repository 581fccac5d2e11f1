/** What every profile and record call resolves first: the entity, the table and the change's origin. */
import type { FastifyRequest } from "fastify";
import { findTableCached } from "../../capture/table-cache.js";
import type { Origin } from "../../domain/change-event.js";
import type { DataTable, TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import { findUnstorableText, UNSTORABLE_TEXT_MESSAGE } from "../../domain/safe-text.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app.js";
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
  const entity = await resolveEntity(deps.db, auth, params.entity);
  const table = await findTableCached(deps.db, entity.id, kind, params.table);
  if (!table)
    throw new HeraldError("HERALD_TABLE_NOT_FOUND", { table: params.table, entity: entity.name });
  return {
    entity,
    table,
    origin: { kind: "API_KEY", apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName },
  };
}
