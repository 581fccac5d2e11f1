/**
 * SQL of records and their unique keys (DESIGN §2). A record is a row of `records` (attributes as
 * JSONB, subscriptions, segment memberships, a version); each value of a unique attribute (and a
 * custom table's business key) is a row of `record_keys`, whose primary key is what enforces
 * uniqueness. Key rows are written with ON CONFLICT DO NOTHING and the statement reports which ones
 * went in: a value another record holds (even one whose transaction commits while we wait for it)
 * shows up as missing, with no read-then-write race and no error to parse.
 */
import type { AttributeMap } from "../domain/change-event.js";
import type { DataCollection } from "../domain/data-collection.js";
import type { KeyValue, SegmentMemberships, SubscriptionStates } from "../domain/record-change.js";
import type { Queryable } from "./database.js";

export interface StoredRecord {
  recordId: number;
  tableId: string;
  businessKey: string | null;
  attributes: AttributeMap;
  subscriptions: SubscriptionStates;
  segments: SegmentMemberships;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  /** A profile's dataCollectionInformation (migration 015); null when never given. */
  dataCollection: DataCollection | null;
}

export type { KeyValue };

export interface RecordRow {
  record_id: number;
  table_id: string;
  business_key: string | null;
  attributes: AttributeMap;
  subscriptions: SubscriptionStates;
  segments: SegmentMemberships;
  version: number;
  created_at: Date;
  updated_at: Date;
  data_collection: DataCollection | null;
}

export const RECORD_COLUMNS =
  "record_id, table_id, business_key, attributes, subscriptions, segments, version, created_at, updated_at, data_collection";

export function toRecord(row: RecordRow): StoredRecord {
  return {
    recordId: row.record_id,
    tableId: row.table_id,
    businessKey: row.business_key,
    attributes: row.attributes,
    subscriptions: row.subscriptions,
    segments: row.segments,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    dataCollection: row.data_collection ?? null,
  };
}

export interface NewRecord {
  tableId: string;
  businessKey: string | null;
  attributes: AttributeMap;
  subscriptions: SubscriptionStates;
  segments: SegmentMemberships;
  keys: KeyValue[];
  /** A profile's dataCollectionInformation, when the write gives one. */
  dataCollection?: DataCollection;
}

/** What the find-or-insert statement did. */
export type FindOrInsertResult =
  | { kind: "found"; records: StoredRecord[] }
  | { kind: "inserted"; record: StoredRecord; takenKeys: KeyValue[] }
  /** The business key exists but its row was not visible when the statement started: retry. */
  | { kind: "none" };

function takenOf(wanted: readonly KeyValue[], inserted: readonly string[]): KeyValue[] {
  const ok = new Set(inserted);
  return wanted.filter((k) => !ok.has(k.attribute));
}

/**
 * One statement for upserts: lock the records that hold any of `lookup` (by business key when
 * given, else by unique key values), or, when there are none and `insert` is true, insert the new
 * record and its keys. Round trips matter here: this is the capture hot path.
 */
export async function findOrInsertRecord(
  tx: Queryable,
  lookup: { businessKey: string | null; keys: readonly KeyValue[] },
  record: NewRecord,
  insert: boolean,
): Promise<FindOrInsertResult> {
  // `existing` takes FOR UPDATE locks on the matches, so concurrent writers of one record queue
  // here; the INSERT only runs when it found nothing. ON CONFLICT on the business key and the key
  // rows waits for an in-flight writer of the same value and then skips, which we report back.
  // Both variants mention $7 and $8 so that every parameter has a type.
  const existing =
    lookup.businessKey !== null
      ? `SELECT ${RECORD_COLUMNS} FROM records
          WHERE table_id = $1 AND business_key = $8::text AND $7::jsonb IS NOT NULL
          FOR UPDATE`
      : // LATERAL … LIMIT 1 (one row per key: it is the primary key) keeps each wanted key an index
        // probe; as a plain join the planner may hash every key of the table, which grows with it.
        `SELECT ${RECORD_COLUMNS} FROM records
          WHERE record_id IN (
            SELECT k.record_id
              FROM jsonb_to_recordset($7::jsonb) AS l(attribute text, value text)
             CROSS JOIN LATERAL (
               SELECT record_id FROM record_keys
                WHERE table_id = $1 AND attribute = l.attribute AND value = l.value LIMIT 1) AS k
             WHERE $8::text IS NULL)
          FOR UPDATE`;
  const { rows } = await tx.query<RecordRow & { found: boolean; inserted_keys: string[] | null }>(
    `WITH existing AS (${existing}),
     inserted AS (
       INSERT INTO records (table_id, business_key, attributes, subscriptions, segments,
                            data_collection)
       SELECT $1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $10::jsonb
        WHERE $9::boolean AND NOT EXISTS (SELECT 1 FROM existing)
       ON CONFLICT (table_id, business_key) WHERE business_key IS NOT NULL DO NOTHING
       RETURNING ${RECORD_COLUMNS}),
     new_keys AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT $1, k.attribute, k.value, i.record_id
         FROM inserted i, jsonb_to_recordset($6::jsonb) AS k(attribute text, value text)
       ON CONFLICT DO NOTHING
       RETURNING attribute)
     SELECT ${RECORD_COLUMNS}, true AS found, NULL::text[] AS inserted_keys FROM existing
     UNION ALL
     SELECT ${RECORD_COLUMNS}, false, ARRAY(SELECT attribute FROM new_keys) FROM inserted`,
    [
      record.tableId,
      record.businessKey,
      JSON.stringify(record.attributes),
      JSON.stringify(record.subscriptions),
      JSON.stringify(record.segments),
      JSON.stringify(record.keys),
      JSON.stringify(lookup.keys),
      lookup.businessKey,
      insert,
      record.dataCollection === undefined ? null : JSON.stringify(record.dataCollection),
    ],
  );
  const first = rows[0];
  if (!first) return { kind: "none" };
  if (!first.found)
    return {
      kind: "inserted",
      record: toRecord(first),
      takenKeys: takenOf(record.keys, first.inserted_keys ?? []),
    };
  return { kind: "found", records: rows.map(toRecord) };
}

/** Inserts a record and its keys (no lookup); reports the key values another record holds. */
export async function insertRecord(tx: Queryable, record: NewRecord): Promise<FindOrInsertResult> {
  return findOrInsertRecord(tx, { businessKey: null, keys: [] }, record, true);
}

/** A record by profile id (record id), optionally locking it for a write. */
export async function findRecordById(
  db: Queryable,
  tableId: string,
  recordId: number,
  lock = false,
): Promise<StoredRecord | undefined> {
  const { rows } = await db.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records WHERE table_id = $1 AND record_id = $2
     ${lock ? "FOR UPDATE" : ""}`,
    [tableId, recordId],
  );
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/** A record by a unique value (record_keys primary key), optionally locking it. */
export async function findRecordByKey(
  db: Queryable,
  tableId: string,
  key: KeyValue,
  lock = false,
): Promise<StoredRecord | undefined> {
  const { rows } = await db.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records
      WHERE record_id = (SELECT record_id FROM record_keys
                          WHERE table_id = $1 AND attribute = $2 AND value = $3)
     ${lock ? "FOR UPDATE" : ""}`,
    [tableId, key.attribute, key.value],
  );
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/** A custom-table record by business key, optionally locking it. */
export async function findRecordByBusinessKey(
  db: Queryable,
  tableId: string,
  businessKey: string,
  lock = false,
): Promise<StoredRecord | undefined> {
  const { rows } = await db.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records WHERE table_id = $1 AND business_key = $2
     ${lock ? "FOR UPDATE" : ""}`,
    [tableId, businessKey],
  );
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export interface RecordUpdate {
  recordId: number;
  tableId: string;
  attributes: AttributeMap;
  subscriptions: SubscriptionStates;
  segments: SegmentMemberships;
  /** Unique attributes whose old key rows go away (value changed or cleared). */
  dropKeys: string[];
  /** New key rows (value changed or set). */
  addKeys: KeyValue[];
  /** A profile's new dataCollectionInformation; undefined keeps the stored one. */
  dataCollection?: DataCollection;
}

/**
 * Writes a changed record (version + 1) and swaps the key rows of changed unique attributes in
 * one statement. The caller holds the row lock. Returns the new version and time, and the new key
 * values another record already holds (the caller rolls back with a 409).
 */
export async function updateRecord(
  tx: Queryable,
  update: RecordUpdate,
): Promise<{ version: number; updatedAt: Date; takenKeys: KeyValue[] }> {
  const { rows } = await tx.query<{ version: number; updated_at: Date; inserted_keys: string[] }>(
    `WITH updated AS (
       UPDATE records
          SET attributes = $3::jsonb, subscriptions = $4::jsonb, segments = $5::jsonb,
              data_collection = COALESCE($8::jsonb, data_collection),
              version = version + 1, updated_at = now()
        WHERE record_id = $1
        RETURNING version, updated_at),
     dropped AS (
       DELETE FROM record_keys WHERE record_id = $1 AND attribute = ANY($6::text[])),
     added AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT $2, k.attribute, k.value, $1
         FROM jsonb_to_recordset($7::jsonb) AS k(attribute text, value text)
       ON CONFLICT DO NOTHING
       RETURNING attribute)
     SELECT version, updated_at, ARRAY(SELECT attribute FROM added) AS inserted_keys FROM updated`,
    [
      update.recordId,
      update.tableId,
      JSON.stringify(update.attributes),
      JSON.stringify(update.subscriptions),
      JSON.stringify(update.segments),
      update.dropKeys,
      JSON.stringify(update.addKeys),
      update.dataCollection === undefined ? null : JSON.stringify(update.dataCollection),
    ],
  );
  const row = rows[0]!;
  return {
    version: row.version,
    updatedAt: row.updated_at,
    takenKeys: takenOf(update.addKeys, row.inserted_keys),
  };
}

/**
 * Stores a profile's dataCollectionInformation alone: no version bump, no new updated_at, no event
 * (SPEC §3: a change of it alone is no UPDATE). One statement, so no lock is needed: it touches no
 * column another write computes from what it read. False when the profile is gone.
 */
export async function setDataCollection(
  db: Queryable,
  tableId: string,
  recordId: number,
  dataCollection: DataCollection,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE records SET data_collection = $3::jsonb WHERE table_id = $1 AND record_id = $2",
    [tableId, recordId, JSON.stringify(dataCollection)],
  );
  return rowCount > 0;
}

/** Deletes a locked record; its key rows go with it (ON DELETE CASCADE). */
export async function deleteRecord(tx: Queryable, recordId: number): Promise<void> {
  await tx.query("DELETE FROM records WHERE record_id = $1", [recordId]);
}

export interface RecordSearch {
  /** Attribute and stored value to match (JSONB containment, served by the GIN index). */
  match?: { attribute: string; value: unknown };
  sortedField?: string;
  ascending: boolean;
  limit: number;
}

/** Records of a table, optionally filtered by one attribute value and sorted by one attribute. */
export async function searchRecords(
  db: Queryable,
  tableId: string,
  search: RecordSearch,
): Promise<StoredRecord[]> {
  const direction = search.ascending ? "ASC" : "DESC";
  const params: unknown[] = [
    tableId,
    search.match ? JSON.stringify({ [search.match.attribute]: search.match.value }) : null,
    search.limit,
  ];
  // jsonb ordering compares numbers as numbers and strings as strings; missing values sort last.
  let order = `record_id ${direction}`;
  if (search.sortedField) {
    params.push(search.sortedField);
    order = `attributes -> $4::text ${direction} NULLS LAST, ${order}`;
  }
  const { rows } = await db.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records
      WHERE table_id = $1 AND ($2::jsonb IS NULL OR attributes @> $2::jsonb)
      ORDER BY ${order}
      LIMIT $3`,
    params,
  );
  return rows.map(toRecord);
}

/**
 * One page of a table's records in record_id order (stable: ids only grow), optionally filtered by
 * one attribute value as searchRecords, and how many records match in all. Two statements, each
 * its own snapshot: under concurrent writes the total may differ from the pages by the writes that
 * committed in between.
 */
export async function pageRecords(
  db: Queryable,
  tableId: string,
  page: { match?: { attribute: string; value: unknown }; offset: number; limit: number },
): Promise<{ records: StoredRecord[]; total: number }> {
  const filter = page.match ? JSON.stringify({ [page.match.attribute]: page.match.value }) : null;
  const { rows } = await db.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records
      WHERE table_id = $1 AND ($2::jsonb IS NULL OR attributes @> $2::jsonb)
      ORDER BY record_id
      LIMIT $3 OFFSET $4`,
    [tableId, filter, page.limit, page.offset],
  );
  const counted = await db.query<{ total: string }>(
    `SELECT count(*) AS total FROM records
      WHERE table_id = $1 AND ($2::jsonb IS NULL OR attributes @> $2::jsonb)`,
    [tableId, filter],
  );
  return { records: rows.map(toRecord), total: Number(counted.rows[0]!.total) };
}

/** True when the table holds at least one record (table definition changes check this). */
export async function tableHasRecords(db: Queryable, tableId: string): Promise<boolean> {
  const { rowCount } = await db.query("SELECT 1 FROM records WHERE table_id = $1 LIMIT 1", [
    tableId,
  ]);
  return rowCount > 0;
}
