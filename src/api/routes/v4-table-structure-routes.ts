/**
 * The v4 structure reads that Actito's sample request files call (SPEC §3):
 * `GET /v4/entity/{entity}/customTable` (the entity's custom tables), `…/customTable/{table}`,
 * `GET /v4/entity/{entity}/table` (its profile tables) and `…/table/{table}` (one profile table's
 * structure). They answer the v5 structure shapes (custom-table-routes.ts, profile-table-routes.ts):
 * a list as `{"customTables": [...]}` / `{"profileTables": [...]}`, one table as its object. Legacy
 * clients reach them under `/ActitoWebServices/ws/v4/…` with HTTP Basic (service-prefixes.ts).
 */
import type { TSchema } from "typebox";
import { Type } from "typebox";
import type { DataTable, TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import { findTable, listTables } from "../../storage/data-table-repository.js";
import type { AppDeps, HeraldApp } from "../app.js";
import { authOf, resolveEntity } from "../auth.js";
import { CustomTable, renderCustomTable } from "./custom-table-routes.js";
import { assertStorableRequest } from "./data-route-context.js";
import type { RouteModule } from "./index.js";
import { ProfileTable, renderProfileTable } from "./profile-table-routes.js";

const EntityParams = Type.Object({ entity: Type.String() });
const TableParams = Type.Object({
  entity: Type.String(),
  table: Type.String({ description: "The table's id or its name" }),
});

interface StructureRead {
  kind: TableKind;
  path: string;
  listKey: string;
  tag: string;
  schema: TSchema;
  render(table: DataTable): Record<string, unknown>;
}

const READS: StructureRead[] = [
  {
    kind: "CUSTOM_TABLE",
    path: "/v4/entity/:entity/customTable",
    listKey: "customTables",
    tag: "custom tables",
    schema: CustomTable,
    render: renderCustomTable,
  },
  {
    kind: "PROFILE_TABLE",
    path: "/v4/entity/:entity/table",
    listKey: "profileTables",
    tag: "profile tables",
    schema: ProfileTable,
    render: renderProfileTable,
  },
];

function register(app: HeraldApp, deps: AppDeps, read: StructureRead): void {
  const what = read.kind === "PROFILE_TABLE" ? "profile" : "custom";
  app.get(
    read.path,
    {
      schema: {
        tags: [read.tag],
        summary: `List the ${what} tables of an entity (v4 path; the v5 structure shape)`,
        params: EntityParams,
        response: { 200: Type.Object({ [read.listKey]: Type.Array(read.schema) }) },
      },
    },
    async (request) => {
      assertStorableRequest(request);
      const entity = await resolveEntity(deps.db, authOf(request), request.params.entity);
      const tables = await listTables(deps.db, entity.id, read.kind);
      return { [read.listKey]: tables.map(read.render) };
    },
  );
  app.get(
    `${read.path}/:table`,
    {
      schema: {
        tags: [read.tag],
        summary: `Read a ${what} table's structure by id or name (v4 path; the v5 structure shape)`,
        params: TableParams,
        response: { 200: read.schema },
      },
    },
    async (request) => {
      assertStorableRequest(request);
      const entity = await resolveEntity(deps.db, authOf(request), request.params.entity);
      const table = await findTable(deps.db, entity.id, read.kind, request.params.table);
      if (!table)
        throw new HeraldError("HERALD_TABLE_NOT_FOUND", {
          table: request.params.table,
          entity: entity.name,
        });
      return read.render(table);
    },
  );
}

const v4TableStructureRoutes: RouteModule = async (app, deps) => {
  for (const read of READS) register(app, deps, read);
};
export default v4TableStructureRoutes;
