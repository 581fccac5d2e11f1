/**
 * Foreign keys of custom tables (SPEC §3): an attribute of a custom table whose value names a
 * record of another table of the same entity, by that record's identity: a profile's `profileId`,
 * a custom record's primary key. Identities never change (a profile keeps its id, a custom record
 * its business key), so a reference can only break when the referenced record is deleted, and
 * `onDelete` says what happens then:
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
import type { AttributeDefinition, DataTable, TableKind, ValueType } from "./data-table.js";
import { TABLE_KINDS } from "./data-table.js";
import type { Json, Problems } from "./definition-reader.js";
import { arrayAt, duplicates, isObject, oneOf, stringAt } from "./definition-reader.js";

export const ON_DELETE_ACTIONS = ["RESTRICT", "CASCADE", "SET_NULL"] as const;
export type OnDeleteAction = (typeof ON_DELETE_ACTIONS)[number];

export interface ForeignKey {
  /** The attribute of this (custom) table that holds the reference. */
  attribute: string;
  /** The referenced table; `id` is stored as the table's id even when a definition gave its name. */
  referencedTable: { kind: TableKind; id: string };
  /** The referenced table's identity: `profileId`, or the custom table's primary key attribute. */
  referencedAttribute: string;
  onDelete: OnDeleteAction;
}

const FOREIGN_KEY_KEYS = ["attribute", "referencedTable", "referencedAttribute", "onDelete"];

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
    for (const key of Object.keys(fk))
      if (!FOREIGN_KEY_KEYS.includes(key)) p.bad(`${at}.${key}`, "is not a key of a foreign key");
    const attribute = stringAt(p, fk.attribute, `${at}.attribute`, true) ?? "";
    const target = referencedTableAt(p, fk.referencedTable, `${at}.referencedTable`);
    const referencedAttribute =
      stringAt(p, fk.referencedAttribute, `${at}.referencedAttribute`, false) ?? "";
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
      attribute,
      referencedTable: target ?? { kind: "PROFILE_TABLE", id: "" },
      referencedAttribute,
      onDelete,
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
  for (const key of Object.keys(raw as Json))
    if (key !== "kind" && key !== "id")
      p.bad(`${path}.${key}`, "is not a key of a table reference");
  const kind = oneOf(p, raw.kind, TABLE_KINDS, `${path}.kind`, true);
  const id = stringAt(p, raw.id, `${path}.id`, true);
  return kind && id ? { kind, id } : undefined;
}

/** The attribute that identifies a record of `table`: what a foreign key refers to. */
export function identityOf(table: DataTable): { name: string; valueTypes: readonly ValueType[] } {
  if (table.kind === "PROFILE_TABLE") return { name: "profileId", valueTypes: ["INTEGER", "LONG"] };
  const name = table.primaryKeyAttribute ?? "";
  const type = table.attributes.find((a) => a.name === name)?.valueType ?? "STRING";
  return { name, valueTypes: [type] };
}

/**
 * Checks what each foreign key of `table` refers to, given the entity's stored tables, and fills
 * in the stored form: the referenced table by id, `referencedAttribute` defaulted to its identity.
 * Problems are 422s naming the entry: an unknown table, the table itself, an attribute that is not
 * the identity, a value type that cannot hold the identity.
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
    if (referencedAttribute !== identity.name)
      p.conflict(
        `${at}.referencedAttribute`,
        `must be '${identity.name}', the identity of '${target.name}' (the only value that never changes)`,
      );
    const own = table.attributes.find((a) => a.name === fk.attribute);
    if (own && !identity.valueTypes.includes(own.valueType))
      p.conflict(
        `${at}.attribute`,
        `'${fk.attribute}' is ${own.valueType}; a reference to '${target.name}' must be ${identity.valueTypes.join(" or ")}`,
      );
    return {
      ...fk,
      referencedTable: { kind, id: target.id },
      referencedAttribute,
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
