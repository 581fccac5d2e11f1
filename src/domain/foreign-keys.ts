/**
 * Foreign keys of custom tables (SPEC §3): an attribute of a custom table whose value names a
 * record of another table of the same entity, by that record's identity (a profile's `profileId`,
 * a custom record's primary key: the default) or by any other unique attribute of that table (as
 * Actito's definition files do: a profile's `customerId`). Identities never change (a profile
 * keeps its id, a custom record its business key); another unique value may, and a record whose
 * value is referred to cannot change it while referred to (409). So a reference can only break
 * when the referenced record is deleted, and `onDelete` says what happens then:
 *
 * - `RESTRICT` (default): the delete is refused (409 HERALD_RECORD_REFERENCED) while a record
 *   refers to it;
 * - `CASCADE`: the referring records are deleted with it, each with its DELETE event;
 * - `SET_NULL`: the referring records lose the value, each with an UPDATE event.
 *
 * This file checks a definition's shape (parseForeignKeys, pure) and what it refers to
 * (foreignKeyTargetProblems, given the entity's tables); capture/foreign-key-enforcement.ts
 * enforces them on writes.
 */
import type {
  AttributeDefinition,
  DataTable,
  ForeignKey,
  TableKind,
  ValueType,
} from "./data-table.js";
import { ON_DELETE_ACTIONS, TABLE_KINDS } from "./data-table.js";
import type { Json, Problems } from "./definition-reader.js";
import { arrayAt, duplicates, isObject, oneOf, stringAt } from "./definition-reader.js";

/**
 * Keys of a foreign key: Herald's (`referencedTable`, `referencedAttribute`) and Actito's
 * (`name`, `reference: {tableType, tableId, attribute}`, `valueAttribute`).
 */
const FOREIGN_KEY_KEYS = [
  "name",
  "attribute",
  "referencedTable",
  "referencedAttribute",
  "reference",
  "onDelete",
  "valueAttribute",
];
const REFERENCE_KEYS = ["tableType", "tableId", "attribute"];

/**
 * Reads `foreignKeys` of a custom-table definition: 400 for a malformed entry, 422 for one that
 * names no attribute of the table, a multi-valued attribute, or SET_NULL on a mandatory one. What
 * the entry refers to is checked later, against the stored tables (foreignKeyTargetProblems).
 * `referencedAttribute` is left empty when not given: it defaults to the referenced identity.
 */
export function parseForeignKeys(
  p: Problems,
  raw: unknown,
  attributes: readonly AttributeDefinition[],
): ForeignKey[] {
  const out: ForeignKey[] = [];
  arrayAt(p, raw, "foreignKeys").forEach((fk, i) => {
    const at = `foreignKeys[${i}]`;
    if (!isObject(fk)) return p.bad(at, "must be an object");
    p.ignoreUnknownKeys(fk, FOREIGN_KEY_KEYS, at, "a foreign key");
    const name = stringAt(p, fk.name, `${at}.name`, false);
    const valueAttribute = stringAt(p, fk.valueAttribute, `${at}.valueAttribute`, false);
    const attribute = stringAt(p, fk.attribute, `${at}.attribute`, true) ?? "";
    // Herald's form and Actito's: either, or both when they agree (as a GET answers them).
    const given = (v: unknown) => v !== undefined && v !== null;
    const herald: [{ kind: TableKind; id: string } | undefined, string] | undefined = given(
      fk.referencedTable,
    )
      ? [
          referencedTableAt(p, fk.referencedTable, `${at}.referencedTable`),
          stringAt(p, fk.referencedAttribute, `${at}.referencedAttribute`, false) ?? "",
        ]
      : undefined;
    const actito = given(fk.reference)
      ? referenceAt(p, fk.reference, `${at}.reference`)
      : undefined;
    if (herald && actito && JSON.stringify(herald) !== JSON.stringify(actito))
      p.bad(
        `${at}.reference`,
        "names another table or attribute than referencedTable: give one form",
      );
    const [target, referencedAttribute] = herald ??
      actito ?? [referencedTableAt(p, undefined, `${at}.referencedTable`), ""];
    const onDelete =
      oneOf(p, fk.onDelete ?? "RESTRICT", ON_DELETE_ACTIONS, `${at}.onDelete`, true) ?? "RESTRICT";
    const own = attributes.find((a) => a.name === attribute);
    if (attribute && !own)
      p.conflict(`${at}.attribute`, `'${attribute}' is not an attribute of the table`);
    else if (own?.multiValued)
      p.conflict(`${at}.attribute`, "a multi-valued attribute cannot hold a reference");
    else if (own?.mandatory && onDelete === "SET_NULL")
      p.conflict(`${at}.onDelete`, `SET_NULL cannot empty the mandatory attribute '${attribute}'`);
    out.push({
      ...(name !== undefined ? { name } : {}),
      attribute,
      referencedTable: target ?? { kind: "PROFILE_TABLE", id: "" },
      referencedAttribute,
      onDelete,
      ...(valueAttribute !== undefined ? { valueAttribute } : {}),
    });
  });
  duplicates(out.map((fk) => fk.attribute)).forEach((i) =>
    p.conflict(`foreignKeys[${i}].attribute`, "holds a second foreign key"),
  );
  return out;
}

function referencedTableAt(
  p: Problems,
  raw: unknown,
  path: string,
): { kind: TableKind; id: string } | undefined {
  if (raw === undefined || raw === null) {
    p.bad(path, 'is required: {"kind": "PROFILE_TABLE" or "CUSTOM_TABLE", "id": id or name}');
    return undefined;
  }
  if (!isObject(raw)) {
    p.bad(path, "must be an object");
    return undefined;
  }
  p.ignoreUnknownKeys(raw as Json, ["kind", "id"], path, "a table reference");
  const kind = oneOf(p, raw.kind, TABLE_KINDS, `${path}.kind`, true);
  const id = stringAt(p, raw.id, `${path}.id`, true);
  return kind && id ? { kind, id } : undefined;
}

/** Actito's `reference: {tableType, tableId, attribute}`: the table and its attribute ("" = identity). */
function referenceAt(
  p: Problems,
  raw: unknown,
  path: string,
): [{ kind: TableKind; id: string } | undefined, string] {
  if (!isObject(raw)) {
    p.bad(path, 'must be an object: {"tableType", "tableId", "attribute"}');
    return [undefined, ""];
  }
  p.ignoreUnknownKeys(raw, REFERENCE_KEYS, path, "a reference");
  const kind = oneOf(p, raw.tableType, TABLE_KINDS, `${path}.tableType`, true);
  // Actito's profile-table ids are numbers in some answers: a number names the same table.
  const rawId = typeof raw.tableId === "number" ? String(raw.tableId) : raw.tableId;
  const id = stringAt(p, rawId, `${path}.tableId`, true);
  const attribute = stringAt(p, raw.attribute, `${path}.attribute`, false) ?? "";
  return [kind && id ? { kind, id } : undefined, attribute];
}

/** The attribute that identifies a record of `table`: what a foreign key refers to. */
export function identityOf(table: DataTable): { name: string; valueTypes: readonly ValueType[] } {
  if (table.kind === "PROFILE_TABLE") return { name: "profileId", valueTypes: ["INTEGER", "LONG"] };
  const name = table.primaryKeyAttribute ?? "";
  const type = table.attributes.find((a) => a.name === name)?.valueType ?? "STRING";
  return { name, valueTypes: [type] };
}

/**
 * The attribute of `target` a foreign key may name, with the value types that can hold its values:
 * the identity, or a unique (single-valued) attribute. Undefined for any other name.
 */
export function referenceableAttribute(
  target: DataTable,
  name: string,
): { name: string; valueTypes: readonly ValueType[] } | undefined {
  const identity = identityOf(target);
  if (name === identity.name) return identity;
  const attribute = target.attributes.find((a) => a.name === name && a.unique && !a.multiValued);
  return attribute ? { name, valueTypes: [attribute.valueType] } : undefined;
}

/**
 * Checks what each foreign key of `table` refers to, given the entity's stored tables, and fills
 * in the stored form: the referenced table by id, `referencedAttribute` defaulted to its identity.
 * Problems are 422s naming the entry: an unknown table, the table itself, an attribute that is
 * neither the identity nor a unique attribute, a value type that cannot hold the referenced values.
 */
export function resolveForeignKeys(
  p: Problems,
  table: Pick<DataTable, "name" | "attributes" | "foreignKeys"> & { id?: string },
  tables: readonly DataTable[],
): ForeignKey[] {
  return (table.foreignKeys ?? []).map((fk, i) => {
    const at = `foreignKeys[${i}]`;
    const { kind, id } = fk.referencedTable;
    const target = tables.find((t) => t.kind === kind && (t.id === id || t.name === id));
    if (!target) {
      const what = kind === "PROFILE_TABLE" ? "profile table" : "custom table";
      p.conflict(`${at}.referencedTable`, `the entity has no ${what} '${id}'`);
      return fk;
    }
    if (target.id === table.id || (kind === "CUSTOM_TABLE" && target.name === table.name)) {
      p.conflict(`${at}.referencedTable`, "a table cannot refer to itself");
      return fk;
    }
    const identity = identityOf(target);
    const referencedAttribute = fk.referencedAttribute || identity.name;
    const referenced = referenceableAttribute(target, referencedAttribute);
    if (!referenced) {
      const unique = target.attributes.filter((a) => a.unique).map((a) => a.name);
      p.conflict(
        `${at}.referencedAttribute`,
        `'${referencedAttribute}' is not a unique attribute of '${target.name}': a foreign key names its identity '${identity.name}'${unique.length > 0 ? ` or a unique attribute (${unique.join(", ")})` : ""}`,
      );
    }
    const own = table.attributes.find((a) => a.name === fk.attribute);
    if (referenced && own && !referenced.valueTypes.includes(own.valueType))
      p.conflict(
        `${at}.attribute`,
        `'${fk.attribute}' is ${own.valueType}; a reference to '${referencedAttribute}' of '${target.name}' must be ${referenced.valueTypes.join(" or ")}`,
      );
    const { byUniqueValue: _ignored, ...given } = fk;
    return {
      ...given,
      referencedTable: { kind, id: target.id },
      referencedAttribute,
      ...(referencedAttribute !== identity.name ? { byUniqueValue: true as const } : {}),
    };
  });
}

/**
 * The foreign keys of a stored table. Definitions stored before foreign keys were enforced were
 * kept as given: an entry without `onDelete` restricts, one without a referenced table is skipped
 * (PUT the definition again to have it checked).
 */
export function foreignKeysOf(table: Pick<DataTable, "foreignKeys">): ForeignKey[] {
  const out: ForeignKey[] = [];
  for (const fk of table.foreignKeys ?? []) {
    const kind = fk.referencedTable?.kind;
    if (!fk.attribute || !fk.referencedTable?.id || !TABLE_KINDS.includes(kind)) continue;
    out.push({
      ...fk,
      onDelete: ON_DELETE_ACTIONS.includes(fk.onDelete) ? fk.onDelete : "RESTRICT",
    });
  }
  return out;
}

/** Foreign keys of `tables` that refer to `target`, with the table that holds each. */
export function referencesTo(
  target: Pick<DataTable, "id">,
  tables: readonly DataTable[],
): { table: DataTable; foreignKey: ForeignKey }[] {
  return tables.flatMap((table) =>
    foreignKeysOf(table)
      .filter((fk) => fk.referencedTable.id === target.id)
      .map((foreignKey) => ({ table, foreignKey })),
  );
}
