/**
 * The v4 structure reads that Actito's sample request files call (SPEC §3):
 * `GET /v4/entity/{entity}/customTable` (the entity's custom tables), `…/customTable/{table}`,
 * `GET /v4/entity/{entity}/table` (its profile tables) and `…/table/{table}` (one profile table's
 * structure). They answer the v5 structure shapes (custom-table-routes.ts, profile-table-routes.ts):
 * a list as `{"customTables": [...]}` / `{"profileTables": [...]}`, one table as its object. Legacy
 * clients reach them under `/ActitoWebServices/ws/v4/…` with HTTP Basic (service-prefixes.ts).
 */
import { CustomTable, renderCustomTable } from "./custom-table-routes.js";
import type { RouteModule } from "./route-module.js";
import { ProfileTable, renderProfileTable } from "./profile-table-routes.js";
import { registerStructureReads } from "./table-structure-routes.js";

const V4 = "(v4 path; the v5 structure shape)";

const v4TableStructureRoutes: RouteModule = async (app, deps) => {
  registerStructureReads(app, deps, {
    kind: "CUSTOM_TABLE",
    path: "/v4/entity/:entity/customTable",
    listKey: "customTables",
    tag: "custom tables",
    tableSchema: CustomTable,
    render: renderCustomTable,
    listSummary: `List the custom tables of an entity ${V4}`,
    readSummary: `Read a custom table's structure by id or name ${V4}`,
  });
  registerStructureReads(app, deps, {
    kind: "PROFILE_TABLE",
    path: "/v4/entity/:entity/table",
    listKey: "profileTables",
    tag: "profile tables",
    tableSchema: ProfileTable,
    render: renderProfileTable,
    listSummary: `List the profile tables of an entity ${V4}`,
    readSummary: `Read a profile table's structure by id or name ${V4}`,
  });
};
export default v4TableStructureRoutes;
