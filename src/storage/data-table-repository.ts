/**
 * SQL of table definitions (SPEC §3): profile tables and custom tables of an entity. The definition
 * is kept as one JSONB document; `id`, `entity_id`, `kind` and `name` are columns so that lookups by
 * id or by name use the primary key or the (entity_id, kind, name) unique index. A table being
 * deleted (deleted_at set, migration 016; jobs/table-deletion-worker.ts removes its records) is
 * invisible to every lookup here: to the API, imports and foreign keys it no longer exists.
 */
import type { DataTable, TableKind } from "../domain/data-table.js";
import { HeraldError } from "../domain/errors.js";
import type { Queryable } from "./database.js";
import { ADVISORY_LOCKS } from "./database.js";
import { sqlState } from "./sql-errors.js";

interface DataTableRow {
  id: string;
  entity_id: number;
  kind: TableKind;
  name: string;
  definition: Omit<DataTable, "id" | "entityId" | "kind" | "name" | "version">;
  version: number;
}

const TABLE_COLUMNS = "id, entity_id, kind, name, definition, version";

function toDataTable(row: DataTableRow): DataTable {
  return {
    ...row.definition,
    id: row.id,
    entityId: row.entity_id,
    kind: row.kind,
    name: row.name,
    version: row.version,
    subscriptions: row.definition.subscriptions ?? [],
    segmentations: row.definition.segmentations ?? [],
    eventsToTrigger: row.definition.eventsToTrigger ?? [],
  };
}

/** The stored JSON document: everything but the columns (the version is a column too). */
function definitionOf(table: Omit<DataTable, "version"> & { version?: number }): string {
  const {
    id: _id,
    entityId: _entityId,
    kind: _kind,
    name: _name,
    version: _version,
    ...definition
  } = table;
  return JSON.stringify(definition);
}

/** A table of the entity by id or, failing that, by name; undefined when neither matches. */
export async function findTable(
  db: Queryable,
  entityId: number,
  kind: TableKind,
  idOrName: string,
): Promise<DataTable | undefined> {
  // An id match wins over a name match (a table may be named like another table's id).
  const { rows } = await db.query<DataTableRow>(
    `SELECT ${TABLE_COLUMNS} FROM data_tables
      WHERE entity_id = $1 AND kind = $2 AND (id = $3 OR name = $3) AND deleted_at IS NULL
      ORDER BY (id = $3) DESC
      LIMIT 1`,
    [entityId, kind, idOrName],
  );
  return rows[0] ? toDataTable(rows[0]) : undefined;
}

/** A table's current definition version; undefined when the table no longer exists. */
export async function currentTableVersion(db: Queryable, id: string): Promise<number | undefined> {
  const { rows } = await db.query<{ version: number }>(
    "SELECT version FROM data_tables WHERE id = $1 AND deleted_at IS NULL",
    [id],
  );
  return rows[0]?.version;
}

/** A table by id alone (any entity); for code that holds an id from an event or a subscription. */
export async function findTableById(db: Queryable, id: string): Promise<DataTable | undefined> {
  const { rows } = await db.query<DataTableRow>(
    `SELECT ${TABLE_COLUMNS} FROM data_tables WHERE id = $1 AND deleted_at IS NULL`,
    [id],
  );
  return rows[0] ? toDataTable(rows[0]) : undefined;
}

export async function listTables(
  db: Queryable,
  entityId: number,
  kind: TableKind,
): Promise<DataTable[]> {
  const { rows } = await db.query<DataTableRow>(
    `SELECT ${TABLE_COLUMNS} FROM data_tables
      WHERE entity_id = $1 AND kind = $2 AND deleted_at IS NULL
      ORDER BY created_at, id`,
    [entityId, kind],
  );
  return rows.map(toDataTable);
}

function nameTaken(error: unknown, table: Pick<DataTable, "kind" | "name">): never {
  if (sqlState(error) === "23505") {
    throw new HeraldError(
      "HERALD_NAME_TAKEN",
      {
        kind: table.kind === "PROFILE_TABLE" ? "Profile table" : "Custom table",
        name: table.name,
      },
      [{ path: "name", message: `a table named '${table.name}' already exists` }],
    );
  }
  throw error;
}

/**
 * Stores a new table; the id is assigned here (profile tables: the next number of
 * profile_table_id_seq; custom tables: a random UUID). 409 HERALD_NAME_TAKEN on a duplicate name.
 */
export async function insertTable(
  db: Queryable,
  table: Omit<DataTable, "id" | "version">,
): Promise<DataTable> {
  const withId = { ...table, id: "" };
  try {
    const { rows } = await db.query<DataTableRow>(
      `INSERT INTO data_tables (id, entity_id, kind, name, definition)
       VALUES (CASE WHEN $2 = 'PROFILE_TABLE' THEN nextval('profile_table_id_seq')::text
                    ELSE gen_random_uuid()::text END,
               $1, $2, $3, $4::jsonb)
       RETURNING ${TABLE_COLUMNS}`,
      [table.entityId, table.kind, table.name, definitionOf(withId)],
    );
    return toDataTable(rows[0]!);
  } catch (error) {
    return nameTaken(error, table);
  }
}

/**
 * Replaces a table's name and definition, as its next version (record writes validated against an
 * earlier one start over: herald_table_write_gate); undefined when the table no longer exists.
 */
export async function updateTable(
  db: Queryable,
  table: Omit<DataTable, "version">,
): Promise<DataTable | undefined> {
  try {
    const { rows } = await db.query<DataTableRow>(
      `UPDATE data_tables
          SET name = $3, definition = $4::jsonb, version = version + 1, updated_at = now()
        WHERE id = $1 AND entity_id = $2 AND deleted_at IS NULL
        RETURNING ${TABLE_COLUMNS}`,
      [table.id, table.entityId, table.name, definitionOf(table)],
    );
    return rows[0] ? toDataTable(rows[0]) : undefined;
  } catch (error) {
    return nameTaken(error, table);
  }
}

/**
 * Channel of table definition changes: every API process forgets its cached definitions when one
 * arrives (api/plugins/table-changes.ts), so reads elsewhere see a change at once instead of within
 * the cache's life.
 */
export const TABLES_CHANNEL = "herald_tables";

/** Inside a transaction that changes table definitions: tells every process at its commit. */
export async function announceTableChange(tx: Queryable, entityId: number): Promise<void> {
  await tx.query("SELECT pg_notify($1, $2)", [TABLES_CHANNEL, String(entityId)]);
}

/**
 * Inside a transaction that changes an entity's table definitions: waits for any other such
 * transaction of the entity, so checks across tables (foreign keys) see every committed definition
 * and none changes under them until this one commits.
 */
export async function lockTableDefinitions(tx: Queryable, entityId: number): Promise<void> {
  // Two 32-bit keys: entity ids beyond 2^31 share a lock with another entity, which only serialises.
  await tx.query("SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::integer)", [
    ADVISORY_LOCKS.tableDefinitions,
    entityId,
  ]);
}

/**
 * Inside a transaction that changes or deletes tables: waits until every record write that passed
 * the write gate of one of them (herald_table_write_gate, migration 013) has committed or rolled
 * back, and holds later ones back until this transaction ends. Checks made after it see every
 * record such a write made; those writes then find the new version and start over.
 */
export async function lockTableWrites(tx: Queryable, tableIds: readonly string[]): Promise<void> {
  await tx.query("SELECT herald_lock_table_writes($1::text[])", [tableIds]);
}

/**
 * The write gate of a transaction about to write records of `tables`: takes their shared write
 * locks and tells whether each is still at the version the write was validated against (false:
 * a definition changed, or a table is gone; write nothing and start over with the new one).
 */
export async function passTableWriteGate(
  tx: Queryable,
  tables: readonly Pick<DataTable, "id" | "version">[],
): Promise<boolean> {
  const { rows } = await tx.query<{ open: boolean }>(
    "SELECT herald_table_write_gate($1::text[], $2::bigint[]) AS open",
    [tables.map((t) => t.id), tables.map((t) => t.version)],
    "herald_table_write_gate",
  );
  return rows[0]?.open === true;
}
