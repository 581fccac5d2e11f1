/**
 * Profile table structure (SPEC §3): `GET|POST /v5/entities/{entity}/profile-tables`,
 * `GET|PUT|DELETE …/{table}`. Read leniently, like custom tables (table-structure-routes.ts).
 */
import { Type } from "typebox";
import { PROFILE_ATTRIBUTE_TYPE_NAMES } from "../../domain/attribute-values.js";
import type { DataTable } from "../../domain/data-table.js";
import { VALUE_TYPES } from "../../domain/data-table.js";
import type { RouteModule } from "./route-module.js";
import {
  DisplayOptionsSchema,
  registerTableStructureRoutes,
  renderAttributes,
  ValueRestrictionSchema,
  WarningsSchema,
} from "./table-structure-routes.js";

const ProfileAttribute = Type.Object({
  name: Type.String({ description: "Letters, digits, '_' or '-'; starts with a letter" }),
  type: Type.Optional(Type.String({ description: PROFILE_ATTRIBUTE_TYPE_NAMES.join(", ") })),
  valueType: Type.Optional(
    Type.String({ description: `For CUSTOM attributes: ${VALUE_TYPES.join(", ")}` }),
  ),
  unique: Type.Optional(Type.Boolean()),
  mandatory: Type.Optional(Type.Boolean()),
  multiValued: Type.Optional(Type.Boolean()),
  valueRestriction: Type.Optional(ValueRestrictionSchema),
  displayOptions: Type.Optional(DisplayOptionsSchema),
});

const Segmentation = Type.Object({
  name: Type.String(),
  type: Type.Optional(Type.String({ description: "SIMPLE (default) or EXCLUSIVE" })),
  segments: Type.Optional(Type.Array(Type.String(), { description: "EXCLUSIVE: its segments" })),
});

const ProfileTableBody = Type.Object({
  id: Type.Optional(Type.String({ description: "Ignored: ids are assigned" })),
  name: Type.String(),
  attributes: Type.Array(ProfileAttribute),
  subscriptions: Type.Optional(Type.Array(Type.Object({ name: Type.String() }))),
  segmentations: Type.Optional(Type.Array(Segmentation)),
  entityName: Type.Optional(
    Type.Unknown({ description: "Actito's key (a string), kept as given" }),
  ),
  displayOptions: Type.Optional(DisplayOptionsSchema),
});

export const ProfileTable = Type.Object({
  id: Type.String(),
  name: Type.String(),
  attributes: Type.Array(ProfileAttribute),
  subscriptions: Type.Array(Type.Object({ name: Type.String() })),
  segmentations: Type.Array(Segmentation),
  entityName: Type.Optional(Type.String()),
  displayOptions: Type.Optional(DisplayOptionsSchema),
  details: WarningsSchema,
});

export function renderProfileTable(table: DataTable): Record<string, unknown> {
  return {
    id: table.id,
    name: table.name,
    attributes: renderAttributes(table),
    subscriptions: table.subscriptions,
    segmentations: table.segmentations,
    ...(table.entityName !== undefined ? { entityName: table.entityName } : {}),
    ...(table.displayOptions !== undefined ? { displayOptions: table.displayOptions } : {}),
  };
}

const profileTableRoutes: RouteModule = async (app, deps) => {
  registerTableStructureRoutes(app, deps, {
    kind: "PROFILE_TABLE",
    collection: "profile-tables",
    listKey: "profileTables",
    tag: "profile tables",
    bodySchema: ProfileTableBody,
    tableSchema: ProfileTable,
    render: renderProfileTable,
  });
};
export default profileTableRoutes;
