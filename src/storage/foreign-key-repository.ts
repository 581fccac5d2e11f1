/**
 * SQL of foreign keys between records (domain/foreign-keys.ts). A reference is checked by locking
 * the referenced record FOR KEY SHARE in the writing transaction: a concurrent delete of that
 * record waits for the writer to commit (and then sees the new reference), and a writer that comes
 * after a delete finds no record. A delete locks its record FOR UPDATE first, then looks for the
 * records that refer to it in a statement of its own: under READ COMMITTED that statement's
 * snapshot sees every reference committed before the lock was granted.
 */
import type { DataTable, TableKind } from "../domain/data-table.js";
import type { Queryable } from "./database.js";
import type { RecordRow, StoredRecord } from "./record-repository.js";
import { RECORD_COLUMNS, toRecord } from "./record-repository.js";

/**
 * Locks the record of table `tableId` whose identity is `identity` (a profileId, or a custom
 * record's business key as stored) so that it cannot be deleted before this transaction ends.
 * False when there is no such record.
 */
export async function lockReferencedRecord(
  tx: Queryable,
  target: { kind: TableKind; id: string },
  identity: string,
): Promise<boolean> {
  const { rows } =
    target.kind === "PROFILE_TABLE"
      ? await tx.query(
          `SELECT 1 FROM records WHERE table_id = $1 AND record_id = $2::bigint FOR KEY SHARE`,
          [target.id, /^\d{1,18}$/.test(identity) ? identity : "-1"],
        )
      : await tx.query(
          `SELECT 1 FROM records WHERE table_id = $1 AND business_key = $2 FOR KEY SHARE`,
          [target.id, identity],
        );
  return rows.length > 0;
}

/** Custom tables of the entity whose stored foreign keys refer to table `tableId`, oldest first. */
export async function tablesReferring(
  tx: Queryable,
  entityId: number,
  tableId: string,
): Promise<DataTable["id"][]> {
  const { rows } = await tx.query<{ id: string }>(
    `SELECT id FROM data_tables
      WHERE entity_id = $1 AND kind = 'CUSTOM_TABLE'
        AND definition -> 'foreignKeys' @> jsonb_build_array(
              jsonb_build_object('referencedTable', jsonb_build_object('id', $2::text)))
      ORDER BY created_at, id`,
    [entityId, tableId],
  );
  return rows.map((row) => row.id);
}

/**
 * Records of `tableId` whose `attribute` holds `value` (stored form), locked FOR UPDATE, oldest
 * first. Run it after the referenced record is locked (see the file comment).
 */
export async function lockReferringRecords(
  tx: Queryable,
  tableId: string,
  attribute: string,
  value: unknown,
): Promise<StoredRecord[]> {
  const { rows } = await tx.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records
      WHERE table_id = $1 AND attributes @> $2::jsonb
      ORDER BY record_id
      FOR UPDATE`,
    [tableId, JSON.stringify({ [attribute]: value })],
  );
  return rows.map(toRecord);
}

/**
 * One record of `tableId` whose `attribute` names no record of the referenced table, if any: the
 * check before a foreign key is added to a table that already holds records.
 */
export async function findDanglingReference(
  db: Queryable,
  tableId: string,
  attribute: string,
  target: { kind: TableKind; id: string; identity: string },
): Promise<{ businessKey: string; value: unknown } | undefined> {
  const match =
    target.kind === "PROFILE_TABLE"
      ? `p.record_id::text = r.attributes ->> $2`
      : `p.business_key IS NOT NULL AND p.attributes -> $4::text = r.attributes -> $2`;
  const { rows } = await db.query<{ business_key: string; value: unknown }>(
    `SELECT r.business_key, r.attributes -> $2 AS value FROM records r
      WHERE r.table_id = $1 AND jsonb_typeof(r.attributes -> $2) IS DISTINCT FROM 'null'
        AND r.attributes ? $2
        AND NOT EXISTS (SELECT 1 FROM records p WHERE p.table_id = $3 AND ${match})
      ORDER BY r.record_id
      LIMIT 1`,
    target.kind === "PROFILE_TABLE"
      ? [tableId, attribute, target.id]
      : [tableId, attribute, target.id, target.identity],
  );
  const row = rows[0];
  return row ? { businessKey: row.business_key, value: row.value } : undefined;
}
