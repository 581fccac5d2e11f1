/**
 * Custom table structure (SPEC §3): `GET|POST /v5/entities/{entity}/custom-tables`,
 * `GET|PUT|DELETE …/{table}`. Definitions are read leniently (domain/table-definition.ts): Actito's
 * keys are kept and returned, unknown keys are ignored with a warning in the answer's `details`.
 */
import { Type } from "typebox";
import { primaryKeyOf } from "../../capture/custom-record-writer.js";
import { CONDITION_OPERATORS } from "../../domain/conditions.js";
import type { DataTable } from "../../domain/data-table.js";
import { VALUE_TYPES } from "../../domain/data-table.js";
import type { ForeignKey } from "../../domain/data-table.js";
import type { RouteModule } from "./route-module.js";
import {
  DisplayOptionsSchema,
  registerTableStructureRoutes,
  renderAttributes,
  ValueRestrictionSchema,
  WarningsSchema,
} from "./table-structure-routes.js";

const CustomAttribute = Type.Object({
  name: Type.String({ description: "Letters, digits, '_' or '-'; starts with a letter" }),
  valueType: Type.String({ description: VALUE_TYPES.join(", ") }),
  unique: Type.Optional(Type.Boolean()),
  mandatory: Type.Optional(Type.Boolean()),
  multiValued: Type.Optional(Type.Boolean()),
  indexed: Type.Optional(Type.Boolean()),
  valueRestriction: Type.Optional(ValueRestrictionSchema),
  displayOptions: Type.Optional(DisplayOptionsSchema),
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
const TableKindSchema = Type.String({ description: "PROFILE_TABLE or CUSTOM_TABLE" });
const ForeignKey = Type.Object(
  {
    name: Type.Optional(Type.String({ description: "Actito's name of the foreign key, kept" })),
    attribute: Type.String({ description: "The attribute of this table that holds the reference" }),
    referencedTable: Type.Optional(
      Type.Object({
        kind: TableKindSchema,
        id: Type.String({ description: "The table's id or name (stored and returned as its id)" }),
      }),
    ),
    referencedAttribute: Type.Optional(
      Type.String({
        description:
          "The referenced table's attribute: its identity (profileId, or a custom table's primaryKeyAttribute: the default) or another unique attribute",
      }),
    ),
    reference: Type.Optional(
      Type.Object(
        {
          tableType: TableKindSchema,
          tableId: Type.Union([Type.String(), Type.Number()], {
            description: "The table's id or name",
          }),
          attribute: Type.Optional(Type.String()),
        },
        {
          description:
            "Actito's form of referencedTable + referencedAttribute (give one form or the other); always answered",
        },
      ),
    ),
    onDelete: Type.Optional(
      Type.String({
        description:
          "What deleting a referenced record does: RESTRICT (default: refused while referred to), CASCADE (the referring records are deleted) or SET_NULL (they lose the value)",
      }),
    ),
    valueAttribute: Type.Optional(Type.String({ description: "Actito's key, kept as given" })),
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
  primaryKeyAttribute: Type.Optional(
    Type.String({
      description:
        "Absent: the table is keyed on 'id', a STRING attribute added when not declared, whose value Herald generates",
    }),
  ),
  creationTimeAttribute: Type.Optional(Type.String()),
  attributes: Type.Array(CustomAttribute),
  foreignKeys: Type.Optional(Type.Array(ForeignKey)),
  eventsToTrigger: Type.Optional(Type.Array(DeclaredEvent)),
  entityName: Type.Optional(
    Type.Unknown({ description: "Actito's key (a string), kept as given" }),
  ),
  displayOptions: Type.Optional(DisplayOptionsSchema),
};
const CustomTableBody = Type.Object({
  id: Type.Optional(Type.String({ description: "Ignored: ids are assigned" })),
  ...fields,
  compositeKey: Type.Optional(
    Type.Unknown({
      description: "Actito's composite key: null or a list of attribute names, kept",
    }),
  ),
  bigTable: Type.Optional(Type.Unknown({ description: "Actito's flag (true or false), kept" })),
  valueAttribute: Type.Optional(
    Type.Unknown({ description: "Actito's value attribute: an attribute name, kept" }),
  ),
});
export const CustomTable = Type.Object({
  id: Type.String(),
  ...fields,
  primaryKeyAttribute: Type.String(),
  entityName: Type.Optional(Type.String()),
  compositeKey: Type.Optional(Type.Array(Type.String())),
  bigTable: Type.Optional(Type.Boolean()),
  valueAttribute: Type.Optional(Type.String()),
  details: WarningsSchema,
});

/** A stored foreign key as answered: both forms of the reference, without internal marks. */
function renderForeignKey(fk: ForeignKey): Record<string, unknown> {
  const { byUniqueValue: _internal, ...stored } = fk;
  return {
    ...stored,
    reference: {
      tableType: fk.referencedTable.kind,
      tableId: fk.referencedTable.id,
      attribute: fk.referencedAttribute,
    },
  };
}

export function renderCustomTable(table: DataTable): Record<string, unknown> {
  return {
    id: table.id,
    name: table.name,
    type: table.customTableType,
    primaryKeyAttribute: primaryKeyOf(table),
    ...(table.creationTimeAttribute ? { creationTimeAttribute: table.creationTimeAttribute } : {}),
    attributes: renderAttributes(table),
    foreignKeys: (table.foreignKeys ?? []).map(renderForeignKey),
    eventsToTrigger: table.eventsToTrigger,
    ...(table.entityName !== undefined ? { entityName: table.entityName } : {}),
    ...(table.compositeKey !== undefined ? { compositeKey: table.compositeKey } : {}),
    ...(table.bigTable !== undefined ? { bigTable: table.bigTable } : {}),
    ...(table.valueAttribute !== undefined ? { valueAttribute: table.valueAttribute } : {}),
    ...(table.displayOptions !== undefined ? { displayOptions: table.displayOptions } : {}),
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
