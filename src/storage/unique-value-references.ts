/**
 * SQL of foreign keys that name a unique attribute of the referenced table other than its identity
 * (domain/foreign-keys.ts: a profile's `customerId`). The referenced value is a `record_keys` row
 * (the unique index that enforces the value), so a lookup is one primary-key probe. Locking follows
 * foreign-key-repository.ts: the writer of a reference locks the referenced record FOR KEY SHARE,
 * and a write that changes or drops the referenced value holds that record FOR UPDATE before it
 * looks for records that still refer to the old value.
 */
import type { Queryable } from "./database.js";

/**
 * Locks the record of `tableId` whose unique `attribute` holds `value` (as its key row keeps it)
 * so that it can be neither deleted nor given another value before this transaction ends. False
 * when no record holds it.
 */
export async function lockRecordByUniqueValue(
  tx: Queryable,
  tableId: string,
  attribute: string,
  value: string,
): Promise<boolean> {
  const { rows } = await tx.query(
    `SELECT 1 FROM records
      WHERE record_id = (SELECT record_id FROM record_keys
                          WHERE table_id = $1 AND attribute = $2 AND value = $3)
      FOR KEY SHARE`,
    [tableId, attribute, value],
  );
  return rows.length > 0;
}

/** True when a record of `tableId` has `attribute` = `value` (stored form; GIN containment). */
export async function anyRecordHolding(
  db: Queryable,
  tableId: string,
  attribute: string,
  value: unknown,
): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT 1 FROM records WHERE table_id = $1 AND attributes @> $2::jsonb LIMIT 1`,
    [tableId, JSON.stringify({ [attribute]: value })],
  );
  return rows.length > 0;
}

/**
 * One record of `tableId` whose `attribute` names no record of `target` by its unique attribute,
 * if any: the check before such a foreign key is added to a table that already holds records.
 * A stored scalar's text (`->>`) is the text its key row keeps (record-keys.ts keyText).
 */
export async function findDanglingUniqueReference(
  db: Queryable,
  tableId: string,
  attribute: string,
  target: { id: string; attribute: string },
): Promise<{ businessKey: string; value: unknown } | undefined> {
  const { rows } = await db.query<{ business_key: string; value: unknown }>(
    `SELECT r.business_key, r.attributes -> $2 AS value FROM records r
      WHERE r.table_id = $1 AND jsonb_typeof(r.attributes -> $2) IS DISTINCT FROM 'null'
        AND r.attributes ? $2
        AND NOT EXISTS (SELECT 1 FROM record_keys k
                         WHERE k.table_id = $3 AND k.attribute = $4
                           AND k.value = r.attributes ->> $2)
      ORDER BY r.record_id
      LIMIT 1`,
    [tableId, attribute, target.id, target.attribute],
  );
  const row = rows[0];
  return row ? { businessKey: row.business_key, value: row.value } : undefined;
}
