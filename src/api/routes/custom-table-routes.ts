/** Custom table structure (SPEC §3): `GET|POST /v5/entities/{entity}/custom-tables`, `GET|PUT|DELETE …/{table}`. */
import { Type } from "typebox";
import { CONDITION_OPERATORS } from "../../domain/conditions.js";
import type { DataTable } from "../../domain/data-table.js";
import { VALUE_TYPES } from "../../domain/data-table.js";
import type { RouteModule } from "./index.js";
import {
  registerTableStructureRoutes,
  renderAttributes,
  ValueRestrictionSchema,
} from "./table-structure-routes.js";

const CustomAttribute = Type.Object({
  name: Type.String({ description: "Letters, digits, '_' or '-'; starts with a letter" }),
  valueType: Type.String({ description: VALUE_TYPES.join(", ") }),
  unique: Type.Optional(Type.Boolean()),
  mandatory: Type.Optional(Type.Boolean()),
  multiValued: Type.Optional(Type.Boolean()),
  indexed: Type.Optional(Type.Boolean()),
  valueRestriction: Type.Optional(ValueRestrictionSchema),
});

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const Condition = Type.Object({
  attribute: Type.String(),
  operator: Type.String({ description: CONDITION_OPERATORS.join(", ") }),
  value: Type.Optional(Type.Union([Scalar, Type.Array(Scalar)])),
});
const TriggerRule = Type.Object({
  onOperation: Type.String({ description: "CREATE, UPDATE or DELETE" }),
  onAnyAttribute: Type.Optional(Type.Array(Type.String())),
  matchingConditions: Type.Optional(
    Type.Object({
      stateBeforeOperation: Type.Optional(Type.Array(Condition)),
      stateAfterOperation: Type.Optional(Type.Array(Condition)),
    }),
  ),
});
const DeclaredEvent = Type.Object({
  name: Type.String(),
  triggerRules: Type.Array(TriggerRule),
});
const ForeignKey = Type.Object(
  {
    attribute: Type.String({ description: "The attribute of this table that holds the reference" }),
    referencedTable: Type.Optional(
      Type.Object({
        kind: Type.String({ description: "PROFILE_TABLE or CUSTOM_TABLE" }),
        id: Type.String({ description: "The table's id or name (stored and returned as its id)" }),
      }),
    ),
    referencedAttribute: Type.Optional(
      Type.String({
        description:
          "The referenced table's identity: profileId, or a custom table's primaryKeyAttribute (the default)",
      }),
    ),
    onDelete: Type.Optional(
      Type.String({
        description:
          "What deleting a referenced record does: RESTRICT (default: refused while referred to), CASCADE (the referring records are deleted) or SET_NULL (they lose the value)",
      }),
    ),
  },
  {
    additionalProperties: true,
    description:
      "A reference to a record of another table of the entity, checked on every write (422 when it names no record)",
  },
);

const fields = {
  name: Type.String(),
  type: Type.String({ description: "INTERACTIONS, LINKED_DATA or REPOSITORY" }),
  primaryKeyAttribute: Type.String(),
  creationTimeAttribute: Type.Optional(Type.String()),
  attributes: Type.Array(CustomAttribute),
  foreignKeys: Type.Optional(Type.Array(ForeignKey)),
  eventsToTrigger: Type.Optional(Type.Array(DeclaredEvent)),
};
const CustomTableBody = Type.Object({
  id: Type.Optional(Type.String({ description: "Ignored: ids are assigned" })),
  ...fields,
});
const CustomTable = Type.Object({ id: Type.String(), ...fields });

export function renderCustomTable(table: DataTable): Record<string, unknown> {
  return {
    id: table.id,
    name: table.name,
    type: table.customTableType,
    primaryKeyAttribute: table.primaryKeyAttribute,
    ...(table.creationTimeAttribute ? { creationTimeAttribute: table.creationTimeAttribute } : {}),
    attributes: renderAttributes(table),
    foreignKeys: table.foreignKeys ?? [],
    eventsToTrigger: table.eventsToTrigger,
  };
}

const customTableRoutes: RouteModule = async (app, deps) => {
  registerTableStructureRoutes(app, deps, {
    kind: "CUSTOM_TABLE",
    collection: "custom-tables",
    listKey: "customTables",
    tag: "custom tables",
    bodySchema: CustomTableBody,
    tableSchema: CustomTable,
    render: renderCustomTable,
  });
};
export default customTableRoutes;
