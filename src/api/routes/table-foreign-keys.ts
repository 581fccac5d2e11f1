/**
 * What the table-structure endpoints check about foreign keys (domain/foreign-keys.ts), beyond the
 * shape of a definition: that each one refers to a table of the entity by its identity (422), that
 * the records a table already holds satisfy a foreign key added to it (422 naming one that does
 * not), that a referenced table keeps its identity (422), and that a referenced table is not
 * deleted (409).
 */
import type { DataTable } from "../../domain/data-table.js";
import { Problems } from "../../domain/definition-reader.js";
import { HeraldError } from "../../domain/errors.js";
import {
  foreignKeysOf,
  identityOf,
  referenceableAttribute,
  referencesTo,
  resolveForeignKeys,
} from "../../domain/foreign-keys.js";
import type { TableDefinition } from "../../domain/table-definition.js";
import { listTables } from "../../storage/data-table-repository.js";
import type { Queryable } from "../../storage/database.js";
import { findDanglingReference } from "../../storage/foreign-key-repository.js";
import { findDanglingUniqueReference } from "../../storage/unique-value-references.js";

async function entityTables(db: Queryable, entityId: number): Promise<DataTable[]> {
  return [
    ...(await listTables(db, entityId, "PROFILE_TABLE")),
    ...(await listTables(db, entityId, "CUSTOM_TABLE")),
  ];
}

/**
 * Checks a posted definition's foreign keys and the references to the table it replaces
 * (`existing`, on PUT), and returns the definition with its foreign keys in stored form.
 */
export async function checkTableReferences(
  db: Queryable,
  entityId: number,
  definition: TableDefinition,
  existing?: DataTable,
): Promise<TableDefinition> {
  const own = foreignKeysOf(definition);
  const referring = existing
    ? referencesTo(existing, await referringTables(db, entityId, existing))
    : [];
  if (own.length === 0 && referring.length === 0) return definition;
  const tables = await entityTables(db, entityId);
  const p = new Problems();
  const foreignKeys = resolveForeignKeys(p, { ...definition, id: existing?.id }, tables);
  if (existing && referring.length > 0) {
    const before = identityOf(existing);
    const changed = { ...existing, ...definition };
    const after = identityOf(changed);
    const identityRef = referring.find(({ foreignKey }) => !foreignKey.byUniqueValue);
    if (
      identityRef &&
      (before.name !== after.name || before.valueTypes.join() !== after.valueTypes.join())
    ) {
      const { table, foreignKey } = identityRef;
      p.conflict(
        existing.kind === "PROFILE_TABLE" ? "attributes" : "primaryKeyAttribute",
        `table '${table.name}' refers to this table's records by '${before.name}' (foreign key '${foreignKey.attribute}'): the identity cannot change while it does`,
      );
    }
    // A reference by another unique attribute needs it to stay unique, with the same type.
    for (const { table, foreignKey } of referring) {
      if (!foreignKey.byUniqueValue) continue;
      const was = referenceableAttribute(existing, foreignKey.referencedAttribute);
      const now = referenceableAttribute(changed, foreignKey.referencedAttribute);
      if (was && (!now || now.valueTypes.join() !== was.valueTypes.join()))
        p.conflict(
          "attributes",
          `table '${table.name}' refers to this table's records by their unique '${foreignKey.referencedAttribute}' (foreign key '${foreignKey.attribute}'): it must stay a unique ${was.valueTypes.join()} attribute while it does`,
        );
    }
  }
  p.throwIfAny();
  const resolved = { ...definition, ...(definition.foreignKeys ? { foreignKeys } : {}) };
  if (existing) await checkAddedForeignKeys(db, existing, resolved, tables);
  return resolved;
}

/**
 * The ids of the stored tables that a posted definition's foreign keys name (by id or by name);
 * names that match nothing are left out (checkTableReferences reports them).
 */
export async function referencedTableIds(
  db: Queryable,
  entityId: number,
  definition: TableDefinition,
): Promise<string[]> {
  const own = foreignKeysOf(definition);
  if (own.length === 0) return [];
  const tables = await entityTables(db, entityId);
  return own.flatMap(({ referencedTable: { kind, id } }) =>
    tables.filter((t) => t.kind === kind && (t.id === id || t.name === id)).map((t) => t.id),
  );
}

async function referringTables(
  db: Queryable,
  entityId: number,
  table: DataTable,
): Promise<DataTable[]> {
  const custom = await listTables(db, entityId, "CUSTOM_TABLE");
  return custom.filter((t) => t.id !== table.id);
}

/** A foreign key added to a table that holds records must hold for every one of them. */
async function checkAddedForeignKeys(
  db: Queryable,
  existing: DataTable,
  definition: TableDefinition,
  tables: readonly DataTable[],
): Promise<void> {
  const before = foreignKeysOf(existing);
  const problems = new Problems();
  for (const [i, fk] of foreignKeysOf(definition).entries()) {
    const kept = before.some(
      (old) => old.attribute === fk.attribute && old.referencedTable.id === fk.referencedTable.id,
    );
    if (kept) continue;
    const target = tables.find((t) => t.id === fk.referencedTable.id);
    if (!target) continue;
    const dangling = fk.byUniqueValue
      ? await findDanglingUniqueReference(db, existing.id, fk.attribute, {
          id: target.id,
          attribute: fk.referencedAttribute,
        })
      : await findDanglingReference(db, existing.id, fk.attribute, {
          ...fk.referencedTable,
          identity: identityOf(target).name,
        });
    if (dangling)
      problems.conflict(
        `foreignKeys[${i}]`,
        `record '${dangling.businessKey}' has ${fk.attribute} ${JSON.stringify(dangling.value)}, which names no record of '${target.name}': fix or delete such records first`,
      );
  }
  problems.throwIfAny();
}

/** DELETE of a table: refused (409) while another table's foreign key refers to it. */
export async function assertNotReferenced(db: Queryable, table: DataTable): Promise<void> {
  const holders = await referringTables(db, table.entityId, table);
  const first = referencesTo(table, holders)[0];
  if (!first) return;
  throw new HeraldError(
    "HERALD_CONFLICT",
    {
      reason: `table '${table.name}' is referred to by foreign key '${first.foreignKey.attribute}' of table '${first.table.name}'; remove that foreign key (or that table) first`,
    },
    [{ path: `${first.table.name}.foreignKeys`, message: `refers to '${table.name}'` }],
  );
}
