/**
 * Capture's common writes as ONE autocommit statement each (DESIGN §3): data-modifying CTEs write
 * the record row (and its key rows), then insert the change events reading from the row CTE's
 * RETURNING, and the inbox NOTIFY (when this write's turn, see takeInboxNotifyTurn) rides along.
 * One statement is one implicit transaction: it commits the row and its events together, or fails
 * and leaves nothing. On PostgreSQL each round trip costs the API process about as much as the
 * rest of a request, so a create here is 1 round trip instead of 4 (BEGIN, write, events, COMMIT)
 * and an optimistic update 2 (read, write) instead of 5; insert time is also commit time, so the
 * sequencer's lag counts no wait for a COMMIT.
 *
 * Each statement passes the table write gate (herald_table_write_gate, migration 013) before it
 * writes: when the table is no longer at the version the write was validated against, it writes
 * nothing and says so (the callers then start over, see capture/write-retry.ts).
 *
 * Key rows are inserted WITHOUT `ON CONFLICT`: a unique value another record holds (even one whose
 * transaction commits while we wait for it) fails the whole statement with unique_violation
 * (23505). Callers then fall back to the transactional path (record-repository.ts), which reports
 * exactly which value is taken, or finds the record a concurrent create just made.
 */
import type { NewChangeEvent } from "../domain/change-event.js";
import type { Queryable } from "./database.js";
import { INBOX_CHANNEL, insertEventDraftsSql } from "./change-event-repository.js";
import type { InboxNotifyTurns } from "./log-channels.js";
import type { KeyValue, NewRecord, RecordUpdate, StoredRecord } from "./record-repository.js";
import { RECORD_COLUMNS, toRecord } from "./record-repository.js";
import type { RecordRow } from "./record-repository.js";

/** Which row values events take from the write: see insertEventDraftsSql. */
export type EventRowValues = "PROFILE" | "CUSTOM";

export type CreateWithEventsResult =
  /** Records already hold a looked-up key (read without a lock, from one snapshot). */
  | { kind: "found"; records: StoredRecord[] }
  | { kind: "inserted"; record: StoredRecord }
  /** Nothing found and `insert` was false, or the business key exists but was not visible. */
  | { kind: "none" };

// The NOTIFY is a SELECT, which only runs when the main query reads it: the inserting branch
// reads its row count.
const NOTIFY_CTE = (events: string, when: string) =>
  `notified AS (
     SELECT pg_notify('${INBOX_CHANNEL}', '') FROM (SELECT 1 FROM ${events} LIMIT 1) AS x
      WHERE ${when}::boolean)`;

// The statements' texts are built once: they are prepared per connection and sent by name.
// LATERAL … LIMIT 1 keeps each wanted key an index probe on the record_keys primary key.
const CREATE_ONE_SQL = `WITH existing AS (
       SELECT ${RECORD_COLUMNS} FROM records
        WHERE record_id IN (
          SELECT k.record_id
            FROM jsonb_to_recordset($7::jsonb) AS l(attribute text, value text)
           CROSS JOIN LATERAL (
             SELECT record_id FROM record_keys
              WHERE table_id = $1 AND attribute = l.attribute AND value = l.value LIMIT 1) AS k)
       UNION ALL
       -- records_business_key; never matches when $12 is null (profiles).
       SELECT ${RECORD_COLUMNS} FROM records WHERE table_id = $1 AND business_key = $12::text),
     gate AS (SELECT herald_table_write_gate(ARRAY[$1::text], ARRAY[$13::bigint]) AS open),
     inserted AS (
       INSERT INTO records (table_id, business_key, attributes, subscriptions, segments,
                            data_collection)
       SELECT $1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $14::jsonb
        WHERE $8::boolean AND NOT EXISTS (SELECT 1 FROM existing) AND (SELECT open FROM gate)
       ON CONFLICT (table_id, business_key) WHERE business_key IS NOT NULL DO NOTHING
       RETURNING ${RECORD_COLUMNS}),
     new_keys AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT $1, k.attribute, k.value, i.record_id
         FROM inserted i, jsonb_to_recordset($6::jsonb) AS k(attribute text, value text)
       RETURNING 1),
     events AS (${insertEventDraftsSql("inserted", "$9", "$10::boolean")}),
     ${NOTIFY_CTE("events", "$11")}
     SELECT ${RECORD_COLUMNS}, true AS found, 0 AS notified FROM existing
     UNION ALL
     SELECT ${RECORD_COLUMNS}, false, (SELECT count(*)::integer FROM notified) FROM inserted`;
const UPDATE_ONE_SQL = `WITH gate AS (
       SELECT herald_table_write_gate(ARRAY[$2::text], ARRAY[$12::bigint]) AS open),
     updated AS (
       UPDATE records
          SET attributes = $3::jsonb, subscriptions = $4::jsonb, segments = $5::jsonb,
              data_collection = COALESCE($13::jsonb, data_collection),
              version = version + 1, updated_at = now()
        WHERE record_id = $1 AND table_id = $2 AND version = $8 AND (SELECT open FROM gate)
        RETURNING ${RECORD_COLUMNS}),
     dropped AS (
       DELETE FROM record_keys
        WHERE record_id IN (SELECT record_id FROM updated) AND attribute = ANY($6::text[])),
     added AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT $2, k.attribute, k.value, u.record_id
         FROM updated u, jsonb_to_recordset($7::jsonb) AS k(attribute text, value text)
       RETURNING 1),
     events AS (${insertEventDraftsSql("updated", "$9", "$10::boolean")}),
     ${NOTIFY_CTE("events", "$11")}
     SELECT ${RECORD_COLUMNS}, (SELECT count(*)::integer FROM notified) AS notified FROM updated`;

/**
 * Looks up the records holding any of `lookupKeys` or `lookupBusinessKey` (no lock; one
 * snapshot) and, when none does and `insert` is true, inserts the record, its key rows and its
 * events — one statement. A business key that another writer inserts concurrently (not visible
 * to the lookup) comes back as `none` (ON CONFLICT … DO NOTHING on records_business_key; the
 * caller takes the transactional path), as does a write whose table changed its definition (the
 * transactional path's gate then reports it).
 */
export async function createRecordWithEvents(
  db: Queryable,
  write: {
    record: NewRecord;
    lookupKeys: readonly KeyValue[];
    /** A custom table's business key to look up (null for profiles). */
    lookupBusinessKey?: string | null;
    insert: boolean;
    events: readonly NewChangeEvent[];
    rowValues: EventRowValues;
    /** The table's version the write was validated against; another one writes nothing (none). */
    tableVersion: number;
  },
  notifyTurns: InboxNotifyTurns,
): Promise<CreateWithEventsResult> {
  const { record } = write;
  const { rows } = await db.query<RecordRow & { found: boolean; notified: number }>(
    CREATE_ONE_SQL,
    [
      record.tableId,
      record.businessKey,
      JSON.stringify(record.attributes),
      JSON.stringify(record.subscriptions),
      JSON.stringify(record.segments),
      JSON.stringify(record.keys),
      JSON.stringify(write.lookupKeys),
      write.insert,
      JSON.stringify(write.events),
      write.rowValues === "PROFILE",
      write.insert && write.events.length > 0 && notifyTurns.takeInboxNotifyTurn(),
      write.lookupBusinessKey ?? null,
      write.tableVersion,
      record.dataCollection === undefined ? null : JSON.stringify(record.dataCollection),
    ],
    // Prepared once per connection: planning this statement costs more than running it
    // (docs/performance-notes.md, "Capture").
    "herald_create_record_with_events",
  );
  const first = rows[0];
  if (!first) return { kind: "none" };
  if (!first.found) return { kind: "inserted", record: toRecord(first) };
  return { kind: "found", records: rows.map(toRecord) };
}

/**
 * Writes a changed record if it is still at `expectedVersion` (optimistic concurrency: the
 * UPDATE's row lock waits for a concurrent writer, then re-checks the version), swaps the key rows
 * of changed unique attributes and appends the events — one statement. `undefined` when the record
 * moved on or was deleted meanwhile, or the table's definition changed: nothing was written, read
 * again and retry.
 */
export async function updateRecordWithEvents(
  db: Queryable,
  write: {
    update: RecordUpdate;
    expectedVersion: number;
    events: readonly NewChangeEvent[];
    rowValues: EventRowValues;
    /** The table's version the write was validated against; another one writes nothing. */
    tableVersion: number;
  },
  notifyTurns: InboxNotifyTurns,
): Promise<StoredRecord | undefined> {
  const { update } = write;
  const { rows } = await db.query<RecordRow & { notified: number }>(
    UPDATE_ONE_SQL,
    [
      update.recordId,
      update.tableId,
      JSON.stringify(update.attributes),
      JSON.stringify(update.subscriptions),
      JSON.stringify(update.segments),
      update.dropKeys,
      JSON.stringify(update.addKeys),
      write.expectedVersion,
      JSON.stringify(write.events),
      write.rowValues === "PROFILE",
      write.events.length > 0 && notifyTurns.takeInboxNotifyTurn(),
      write.tableVersion,
      update.dataCollection === undefined ? null : JSON.stringify(update.dataCollection),
    ],
    "herald_update_record_with_events",
  );
  return rows[0] ? toRecord(rows[0]) : undefined;
}

// Batches (group commit) ---------------------------------------------------------------------------
// Several profile writes in two statements whatever their mix (capture/profile-upsert.ts gathers the
// writes that arrive together): a read-only lookup of the profiles that hold the items' unique
// values (no transaction id, so no WAL flush), then ONE autocommit statement that creates the new
// profiles and updates the existing ones, with their key rows and events: one commit and one WAL
// flush for the whole batch. Items are numbered by their place in the array (`n`) and every result
// row carries its item's `n`. One failing item fails the whole write and writes nothing for any
// item; the batcher then runs each item on its own, so one bad item never fails the others.

/** A lookup of a batch: the unique values to find an existing profile by. */
export interface BatchLookup {
  tableId: string;
  keys: readonly KeyValue[];
}

// LATERAL … LIMIT 1 keeps each wanted key a probe of the record_keys primary key, and the records a
// probe of theirs (test/integration/statement-plans.test.ts checks the plan on empty tables).
const LOOKUP_MANY_SQL = `SELECT i.n, ${qualified("r")}
       FROM jsonb_to_recordset($1::jsonb) AS i(n integer, table_id text, keys jsonb)
      CROSS JOIN LATERAL (
        SELECT DISTINCT k.record_id
          FROM jsonb_to_recordset(i.keys) AS l(attribute text, value text)
         CROSS JOIN LATERAL (
           SELECT record_id FROM record_keys
            WHERE table_id = i.table_id AND attribute = l.attribute AND value = l.value
            LIMIT 1) AS k) AS f
      CROSS JOIN LATERAL (
        SELECT ${RECORD_COLUMNS} FROM records WHERE record_id = f.record_id LIMIT 1) AS r`;

/**
 * Per item, in item order: the records holding any of its keys (none, one, or several when its
 * values belong to different profiles), read without a lock from one snapshot.
 */
export async function findRecordsByKeys(
  db: Queryable,
  items: readonly BatchLookup[],
): Promise<StoredRecord[][]> {
  const results: StoredRecord[][] = items.map(() => []);
  const wanted = items.flatMap((item, n) =>
    item.keys.length > 0 ? [{ n, table_id: item.tableId, keys: item.keys }] : [],
  );
  if (wanted.length === 0) return results;
  const { rows } = await db.query<RecordRow & { n: number }>(
    LOOKUP_MANY_SQL,
    [JSON.stringify(wanted)],
    "herald_find_records_by_keys",
  );
  for (const row of rows) results[row.n]!.push(toRecord(row));
  return results;
}

/** A create of a batch write (a profile: no business key). */
export interface BatchCreate {
  record: Omit<NewRecord, "businessKey">;
  events: readonly NewChangeEvent[];
  /** The table's version the write was validated against. */
  tableVersion: number;
}

/** An update of a batch write: as updateRecordWithEvents (profiles). */
export interface BatchUpdate {
  update: RecordUpdate;
  expectedVersion: number;
  events: readonly NewChangeEvent[];
  tableVersion: number;
}

export interface BatchWriteResult {
  /** False when a table of the batch is no longer at the version given: nothing was written. */
  current: boolean;
  /** Per create, in order: the id of the record created. */
  created: number[];
  /** Per update, in order: the version written, or undefined when the record moved on or was
   * deleted since it was read (nothing was written for it: read again and retry). */
  updated: (number | undefined)[];
}

/** RECORD_COLUMNS, each prefixed with a table alias. */
export function qualified(alias: string): string {
  return RECORD_COLUMNS.split(",")
    .map((column) => `${alias}.${column.trim()}`)
    .join(", ");
}

// Creates (record_id null in the input) take their ids from the identity sequence first, so each
// inserted row is known to be its item's. Updates find their record by a probe of its primary key
// (LATERAL … LIMIT 1, never flattened into a join) and write it by its row address, if it is still at
// the version read. The statement is prepared once per connection, often while the table is still
// small: written as a join of the input with records, the update was planned as a hash join over a
// sequential scan of every record, kept for the connection's life. A row that a concurrent writer
// updates after the probe has a new address: the UPDATE's re-check skips it, and the item comes
// back as moved on. Key rows: a create inserts all of its own, an update drops the rows of the
// attributes in drop_keys and inserts its new ones (`keys`).
const WRITE_MANY_SQL = `WITH input AS MATERIALIZED (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
         n integer, record_id bigint, table_id text, table_version bigint,
         expected_version integer, attributes jsonb, subscriptions jsonb, segments jsonb, keys jsonb,
         drop_keys jsonb, events jsonb, data_collection jsonb)),
     gate AS (
       SELECT herald_table_write_gate(array_agg(table_id), array_agg(table_version)) AS open
         FROM input),
     fresh AS MATERIALIZED (
       SELECT i.n, i.table_id, i.attributes, i.subscriptions, i.segments, i.keys, i.events,
              i.data_collection, nextval((SELECT pg_get_serial_sequence('records', 'record_id'))) AS new_id
         FROM input i
        WHERE i.record_id IS NULL AND (SELECT open FROM gate)
        ORDER BY i.n),
     inserted AS (
       INSERT INTO records (record_id, table_id, business_key, attributes, subscriptions, segments,
                            data_collection)
       OVERRIDING SYSTEM VALUE
       SELECT new_id, table_id, NULL, attributes, subscriptions, segments, data_collection
         FROM fresh ORDER BY n
       RETURNING record_id, version, created_at, updated_at),
     targets AS (
       SELECT i.*, t.row_ctid
         FROM input i
        CROSS JOIN LATERAL (
          SELECT ctid AS row_ctid FROM records
           WHERE record_id = i.record_id AND table_id = i.table_id
             AND version = i.expected_version
           LIMIT 1) AS t
        WHERE (SELECT open FROM gate)),
     updated AS (
       UPDATE records r
          SET attributes = i.attributes, subscriptions = i.subscriptions, segments = i.segments,
              data_collection = COALESCE(i.data_collection, r.data_collection),
              version = r.version + 1, updated_at = now()
         FROM targets i
        WHERE r.ctid = i.row_ctid AND r.version = i.expected_version
        RETURNING i.n, i.keys, i.drop_keys, i.events, r.record_id, r.table_id, r.version,
                  r.created_at, r.updated_at),
     written AS (
       SELECT f.n, f.keys, f.events, w.record_id, f.table_id, w.version, w.created_at,
              w.updated_at
         FROM fresh f JOIN inserted w ON w.record_id = f.new_id
       UNION ALL
       SELECT n, keys, events, record_id, table_id, version, created_at, updated_at
         FROM updated),
     dropped AS (
       DELETE FROM record_keys k USING updated u
        WHERE k.record_id = u.record_id
          AND k.attribute IN (SELECT jsonb_array_elements_text(u.drop_keys))),
     new_keys AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT w.table_id, k.attribute, k.value, w.record_id
         FROM written w, jsonb_to_recordset(w.keys) AS k(attribute text, value text)
       RETURNING 1),
     events AS (${insertEventDraftsSql("written", "w.events", "true", "w.n, t.n")}),
     ${NOTIFY_CTE("events", "$2")}
     SELECT n, record_id, version, (SELECT count(*)::integer FROM notified) AS notified
       FROM written
     UNION ALL
     -- The gate stayed shut: nothing was written; one row with n = -1 says so.
     SELECT -1, NULL, NULL, 0 WHERE NOT (SELECT open FROM gate)`;

/**
 * Creates and updates many profiles (distinct records, distinct unique values) as ONE autocommit
 * statement, each with its key rows and events, in item order: creates first, then updates. Two
 * items of one unique value fail the statement (23505) like a value another writer took. When one
 * of the tables is no longer at the version given, nothing is written (`current: false`).
 */
export async function writeRecordsWithEvents(
  db: Queryable,
  creates: readonly BatchCreate[],
  updates: readonly BatchUpdate[],
  notifyTurns: InboxNotifyTurns,
): Promise<BatchWriteResult> {
  const input = [
    ...creates.map(({ record, events, tableVersion }, n) => ({
      n,
      record_id: null,
      table_id: record.tableId,
      table_version: tableVersion,
      expected_version: null,
      attributes: record.attributes,
      subscriptions: record.subscriptions,
      segments: record.segments,
      keys: record.keys,
      drop_keys: [],
      events,
      data_collection: record.dataCollection ?? null,
    })),
    ...updates.map(({ update, expectedVersion, events, tableVersion }, i) => ({
      n: creates.length + i,
      record_id: update.recordId,
      table_id: update.tableId,
      table_version: tableVersion,
      expected_version: expectedVersion,
      attributes: update.attributes,
      subscriptions: update.subscriptions,
      segments: update.segments,
      keys: update.addKeys,
      drop_keys: update.dropKeys,
      events,
      data_collection: update.dataCollection ?? null,
    })),
  ];
  const result: BatchWriteResult = {
    current: true,
    created: [],
    updated: updates.map(() => undefined),
  };
  if (input.length === 0) return result;
  const notify = input.some((item) => item.events.length > 0);
  const { rows } = await db.query<{ n: number; record_id: number; version: number }>(
    WRITE_MANY_SQL,
    [JSON.stringify(input), notify && notifyTurns.takeInboxNotifyTurn()],
    "herald_write_records_with_events",
  );
  if (rows.some((row) => row.n === -1)) return { ...result, current: false };
  for (const row of rows) {
    if (row.n < creates.length) result.created[row.n] = row.record_id;
    else result.updated[row.n - creates.length] = row.version;
  }
  // An INSERT either writes every row or fails the statement: a create without its row is a bug.
  if (rows.filter((row) => row.n < creates.length).length !== creates.length)
    throw new Error("internal error: a batch write left a create without its record");
  return result;
}
