/** SQL of predefined ETLs (SPEC §7.1, migration 014): a name and a definition per entity. */
import type { EtlDefinition } from "../domain/etl-definition.js";
import type { Queryable } from "./database.js";

export interface StoredEtl {
  id: string;
  entityId: number;
  name: string;
  definition: EtlDefinition;
  createdAt: Date;
  updatedAt: Date;
}

interface EtlRow {
  id: number;
  entity_id: number;
  name: string;
  definition: EtlDefinition;
  created_at: Date;
  updated_at: Date;
}

function toEtl(row: EtlRow): StoredEtl {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    name: row.name,
    definition: row.definition,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const ETL_COLUMNS = "id, entity_id, name, definition, created_at, updated_at";

/** Inserts an ETL; undefined when the entity already has one of that name. */
export async function insertEtl(
  db: Queryable,
  entityId: number,
  name: string,
  definition: EtlDefinition,
): Promise<StoredEtl | undefined> {
  const { rows } = await db.query<EtlRow>(
    `INSERT INTO etls (entity_id, name, definition) VALUES ($1, $2, $3)
     ON CONFLICT (entity_id, name) DO NOTHING RETURNING ${ETL_COLUMNS}`,
    [entityId, name, JSON.stringify(definition)],
  );
  return rows[0] ? toEtl(rows[0]) : undefined;
}

/** An ETL by id (digits) or name. */
export async function findEtl(
  db: Queryable,
  entityId: number,
  idOrName: string,
): Promise<StoredEtl | undefined> {
  const id = /^\d{1,15}$/.test(idOrName) ? Number(idOrName) : null;
  const { rows } = await db.query<EtlRow>(
    `SELECT ${ETL_COLUMNS} FROM etls
      WHERE entity_id = $1 AND (id = $2 OR name = $3)
      ORDER BY (id = $2) DESC NULLS LAST LIMIT 1`,
    [entityId, id, idOrName],
  );
  return rows[0] ? toEtl(rows[0]) : undefined;
}

export async function listEtls(
  db: Queryable,
  entityId: number,
  page: { offset: number; limit: number },
): Promise<{ etls: StoredEtl[]; total: number }> {
  const { rows } = await db.query<EtlRow & { total: number }>(
    `SELECT ${ETL_COLUMNS}, count(*) OVER ()::integer AS total FROM etls
      WHERE entity_id = $1 ORDER BY id LIMIT $2 OFFSET $3`,
    [entityId, page.limit, page.offset],
  );
  const total = rows[0]?.total ?? (await countEtls(db, entityId));
  return { etls: rows.map(toEtl), total };
}

async function countEtls(db: Queryable, entityId: number) {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM etls WHERE entity_id = $1",
    [entityId],
  );
  return rows[0]?.n ?? 0;
}

/** Replaces an ETL's name and definition; undefined when it is gone, "name-taken" on a clash. */
export async function updateEtl(
  db: Queryable,
  entityId: number,
  id: string,
  name: string,
  definition: EtlDefinition,
): Promise<StoredEtl | undefined | "name-taken"> {
  const { rows } = await db.query<EtlRow & { clash: boolean }>(
    `WITH clash AS (SELECT 1 FROM etls WHERE entity_id = $1 AND name = $3 AND id <> $2)
     UPDATE etls SET name = $3, definition = $4, updated_at = now()
      WHERE entity_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM clash)
     RETURNING ${ETL_COLUMNS}, false AS clash`,
    [entityId, Number(id), name, JSON.stringify(definition)],
  );
  if (rows[0]) return toEtl(rows[0]);
  return (await findEtl(db, entityId, id)) ? "name-taken" : undefined;
}

export async function deleteEtl(db: Queryable, entityId: number, id: string): Promise<boolean> {
  const { rowCount } = await db.query("DELETE FROM etls WHERE entity_id = $1 AND id = $2", [
    entityId,
    Number(id),
  ]);
  return rowCount > 0;
}
